//! TEMPORARY stub with the agreed API (replaced by the real implementation on merge).
#![allow(missing_docs)]
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    Auto,
    Native,
    Skb,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Skb,
}
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct LoaderError;
#[derive(Debug, Default, Clone, Copy)]
pub struct RedirectCounters {
    pub redirected: u64,
    pub no_socket: u64,
    pub passed: u64,
}
#[derive(Debug)]
pub struct RedirectProgram;
impl RedirectProgram {
    pub fn load(_mac: [u8; 6], _owned: &[IpAddr]) -> Result<Self, LoaderError> {
        Ok(RedirectProgram)
    }
    pub fn attach(&mut self, _ifname: &str, _mode: XdpMode) -> Result<AttachedMode, LoaderError> {
        Ok(AttachedMode::Native)
    }
    pub fn register_socket(&mut self, _q: u32, _fd: BorrowedFd<'_>) -> Result<(), LoaderError> {
        Ok(())
    }
    pub fn unregister_socket(&mut self, _q: u32) -> Result<(), LoaderError> {
        Ok(())
    }
    pub fn counters(&self) -> Result<RedirectCounters, LoaderError> {
        Ok(RedirectCounters::default())
    }
}
