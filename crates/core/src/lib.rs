//! ipsight's small core: rules every other crate shares and none should write again. It depends on
//! nothing, so any crate (parsers, the model, the synthetic data, the CLI) may use it.
pub mod keys;
pub mod labels;
pub mod time;
pub mod tuning;
