//! The RocksDB store (`Store`): opening it safely (`open`), writing runs
//! (`record`), finding hits and explaining misses (`lookup`), bounding it
//! (`evict`), and taking in remote results (`import`, `memo`). `db` holds
//! the on-disk layout. All blocking: the runner calls these through
//! `blocking::unblock`.

pub(crate) mod db;
pub(crate) mod evict;
pub(crate) mod import;
pub(crate) mod layout;
pub(crate) mod lookup;
mod memo;
pub(crate) mod open;
pub(crate) mod record;
pub(crate) mod state;

#[cfg(test)]
mod scenario_tests;

pub(crate) use db::Store;
