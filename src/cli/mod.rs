//! What `virtnet` prints, laid out as virsh lays it out.

pub mod table;
