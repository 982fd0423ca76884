pub mod evaluate;
pub mod score;
pub mod train;
