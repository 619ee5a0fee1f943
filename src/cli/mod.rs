//! The command-line programs' side: their arguments, `virtnet`'s verbs and
//! what it prints (laid out as virsh lays it out), and their man pages and
//! shell completions.

pub mod args;
mod client;
pub mod docs;
mod doctor;
mod edit;
mod editor;
mod failure;
mod import;
mod input;
mod list;
mod reedit;
pub mod table;
#[cfg(feature = "libvirt")]
mod takeover;
mod verbs;

pub use failure::Failure;
pub use verbs::run;
