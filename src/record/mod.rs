pub mod naming;
pub mod retention;
