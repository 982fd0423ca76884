pub mod demo;
pub mod evaluate;
pub mod prepare;
pub mod sagemaker;
pub mod score;
pub mod serve;
pub mod synth;
pub mod train;
