//! TEMPORARY stub with the agreed API (replaced by the real implementation on merge).
#![allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyPolicy {
    pub ipv4_ttl: u8,
    pub ipv6_hop_limit: u8,
}
impl Default for ReplyPolicy {
    fn default() -> Self {
        ReplyPolicy {
            ipv4_ttl: 64,
            ipv6_hop_limit: 64,
        }
    }
}
#[derive(Debug)]
pub struct Responder {
    policy: ReplyPolicy,
}
impl Responder {
    pub fn new(policy: ReplyPolicy, _seed: u16) -> Self {
        Responder { policy }
    }
    pub fn policy(&self) -> ReplyPolicy {
        self.policy
    }
    pub fn respond(&mut self, _frame: &mut [u8]) -> Verdict {
        Verdict::Drop(DropReason::Truncated)
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Reply { len: usize },
    Drop(DropReason),
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    Truncated,
    IcmpChecksum,
}
impl DropReason {
    pub const ALL: [DropReason; 2] = [DropReason::Truncated, DropReason::IcmpChecksum];
    pub const COUNT: usize = 2;
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::IcmpChecksum => "icmp-checksum",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}
