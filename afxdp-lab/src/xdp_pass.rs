//! An XDP program that passes every frame (`redirect-ebpf/xdp_pass.c`), for a veth peer.
//!
//! On veth, frames that an XDP program sends out of one end (`XDP_TX`, redirects) are delivered
//! only if the *other* end runs an XDP program too; attaching this one to the client end of a
//! pair whose responder answers with `--engine xdp-tx` is all it takes.

use std::fmt;

use aya::Ebpf;
use aya::programs::xdp::XdpLink;
use aya::programs::{Link as _, Xdp, XdpMode};

/// `xdp_pass.c`, attached in native mode with a bpf_link. Dropping it detaches the program.
pub struct PassProgram {
    // Declared first so it is dropped first: detach before the program goes away.
    link: Option<XdpLink>,
    ifname: String,
    _ebpf: Ebpf,
}

impl fmt::Debug for PassProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassProgram")
            .field("ifname", &self.ifname)
            .finish_non_exhaustive()
    }
}

impl PassProgram {
    /// Name of the XDP function in `xdp_pass.c`.
    pub const NAME: &'static str = "xdp_pass";

    /// Loads the program and attaches it to `ifname` (in the calling thread's network
    /// namespace) in native mode with a bpf_link. The error says which step failed.
    pub fn attach(ifname: &str) -> Result<Self, String> {
        let ifindex = nix::net::if_::if_nametoindex(ifname).map_err(|e| format!("no interface {ifname}: {e}"))?;
        let mut ebpf = Ebpf::load(redirect_ebpf::XDP_PASS).map_err(|e| format!("loading xdp_pass.o: {e}"))?;
        let program: &mut Xdp = ebpf
            .program_mut(Self::NAME)
            .ok_or("xdp_pass.o has no xdp_pass program")?
            .try_into()
            .map_err(|e| format!("xdp_pass is not an XDP program: {e}"))?;
        program.load().map_err(|e| format!("verifying xdp_pass: {e}"))?;
        let link_id = program
            .attach_to_if_index(ifindex, XdpMode::Driver)
            .map_err(|e| format!("attaching xdp_pass to {ifname} in native mode: {e}"))?;
        let link = program
            .take_link(link_id)
            .map_err(|e| format!("taking the xdp_pass link: {e}"))?;
        Ok(PassProgram {
            link: Some(link),
            ifname: ifname.to_owned(),
            _ebpf: ebpf,
        })
    }

    /// The interface it is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Detaches the program now (dropping it does the same).
    pub fn detach(mut self) -> Result<(), String> {
        match self.link.take() {
            Some(link) => link
                .detach()
                .map_err(|e| format!("detaching xdp_pass from {}: {e}", self.ifname)),
            None => Ok(()),
        }
    }
}
