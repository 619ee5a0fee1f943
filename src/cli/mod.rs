//! The command-line programs' side: their arguments, what `virtnet`
//! prints (laid out as virsh lays it out), and their man pages and shell
//! completions.

pub mod args;
pub mod docs;
pub mod table;
