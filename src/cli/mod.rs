//! The command-line programs' side: their arguments, `virtnet`'s verbs and
//! what it prints (laid out as virsh lays it out), and their man pages and
//! shell completions.

pub mod args;
mod client;
mod complete;
pub mod docs;
mod doctor;
mod dumpxml;
mod edit;
mod editor;
mod event;
mod failure;
mod import;
mod input;
mod list;
mod manpage;
mod metadata;
mod output;
mod program;
mod reedit;
mod schema;
pub mod table;
#[cfg(feature = "libvirt")]
mod takeover;
mod usage;
mod verbs;

pub use failure::Failure;
pub use program::main;
