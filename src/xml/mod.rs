//! XML reading and writing shared by every document virtnet handles.

pub mod tree;
pub mod write;
