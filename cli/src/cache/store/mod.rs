//! The RocksDB store (`Store`): opening it safely (`open`), read-only
//! until the first write (`access`, with hits noted in `journal`), writing runs
//! (`record`), finding hits and explaining misses (`lookup`), bounding it
//! (`evict`), taking in remote results (`import`, `memo`), and reading it
//! without writing for a dry run (`read_only`, `Store::peek`). `db` holds
//! the on-disk layout. All blocking: the runner calls these on the blocking
//! pool, or on the event loop's thread when nothing else needs it
//! (`run::store::StoreThread`).

pub(crate) mod access;
pub(crate) mod db;
pub(crate) mod evict;
pub(crate) mod import;
mod in_place;
mod journal;
pub(crate) mod layout;
mod leftovers;
pub(crate) mod lookup;
mod memo;
pub(crate) mod nesting;
pub(crate) mod open;
pub(crate) mod read_only;
pub(crate) mod record;
pub(crate) mod state;

#[cfg(test)]
mod scenario_tests;

pub(crate) use db::Store;
