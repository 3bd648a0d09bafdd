//! The Node addon embedded in the `vp` binary (built by `cli/build.rs`).
//! The runner materializes it (`crate::embedded`) and passes the path to
//! every `BridgeSession`, which exports it as `VP_RUN_NODE_CLIENT_PATH`.

use crate::embedded::Embedded;

pub(crate) const ADDON: Embedded = Embedded {
    what: "Node addon",
    file_name: concat!(
        "vp-bridge-",
        env!("CARGO_PKG_VERSION"),
        "-",
        env!("VP_BRIDGE_ADDON_HASH"),
        ".node"
    ),
    bytes: include_bytes!(concat!(env!("OUT_DIR"), "/vp-bridge.node")),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_addon_is_a_shared_object() {
        assert!(
            ADDON.bytes.starts_with(b"\x7fELF"),
            "embedded addon is not an ELF file"
        );
    }
}
