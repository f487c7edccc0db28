//! Reads the frame tracer's text (`afxdp-responder --trace N`, on stderr) back into journeys and
//! checks that each one holds together: the RX address lies in the frame the fill ring handed
//! over, TX sends that very address, the completion returns it, the refill gives the frame back,
//! and the RFC 1624 arithmetic printed for each checksum gives the checksum printed. The
//! arithmetic is redone here, with its own code, from the printed terms.

use std::collections::BTreeMap;

/// One checksum update as the trace prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumLine {
    /// `ipv4 header` or `icmp`.
    pub which: String,
    /// `HC`: the request's checksum.
    pub old: u16,
    /// The changed words `(m, m')`.
    pub words: Vec<(u16, u16)>,
    /// `HC'`: the checksum in the reply.
    pub new: u16,
}

impl ChecksumLine {
    /// `~(~HC + ~m + m' + …)` in one's-complement arithmetic, computed here.
    pub fn recompute(&self) -> u16 {
        let mut sum = u32::from(!self.old);
        for &(m, m_new) in &self.words {
            sum += u32::from(!m) + u32::from(m_new);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }
}

/// One traced frame's journey, as far as the trace shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Journey {
    /// The frame's number in its worker's trace (from 1).
    pub number: u32,
    /// Queue of the worker.
    pub queue: u32,
    /// Fill-ring index the frame was handed to the kernel at, and the frame base.
    pub fill: Option<(u32, u64)>,
    /// Whether that was the fill before bind (frame i at index i).
    pub filled_before_bind: bool,
    /// RX descriptor: address, length, frame base, headroom.
    pub rx: Option<(u64, u32, u64, u64)>,
    /// `IPv4`/`IPv6`, identifier, sequence (from the request line).
    pub request: Option<(String, u16, u16)>,
    /// The checksum updates.
    pub checksums: Vec<ChecksumLine>,
    /// TX descriptor: address, length.
    pub tx: Option<(u64, u32)>,
    /// Completion address.
    pub completion: Option<u64>,
    /// Frame base given back to the fill ring (refill or drop).
    pub refill: Option<u64>,
    /// The drop reason, if it was dropped.
    pub dropped: Option<String>,
}

impl Journey {
    /// Checks that the journey is complete and consistent for frames of `frame_size` bytes.
    pub fn check(&self, frame_size: u64) -> Result<(), String> {
        let n = self.number;
        let (fill_index, fill_frame) = self.fill.ok_or(format!("#{n}: no fill line"))?;
        let (rx_addr, _, rx_frame, headroom) = self.rx.ok_or(format!("#{n}: no rx line"))?;
        if rx_addr & !(frame_size - 1) != fill_frame || rx_frame != fill_frame || rx_addr != fill_frame + headroom {
            return Err(format!(
                "#{n}: rx addr {rx_addr:#x} (frame {rx_frame:#x} + {headroom}) is not in the filled frame {fill_frame:#x}"
            ));
        }
        if self.filled_before_bind && u64::from(fill_index) * frame_size != fill_frame {
            return Err(format!(
                "#{n}: fill index {fill_index} did not hold frame {fill_frame:#x} at bind"
            ));
        }
        if let Some(reason) = &self.dropped {
            return match self.refill {
                Some(base) if base == fill_frame => Ok(()),
                _ => Err(format!("#{n}: dropped ({reason}) but not given back to the fill ring")),
            };
        }
        let (tx_addr, _) = self.tx.ok_or(format!("#{n}: no tx line"))?;
        if tx_addr != rx_addr {
            return Err(format!("#{n}: tx addr {tx_addr:#x} != rx addr {rx_addr:#x}"));
        }
        if self.completion != Some(tx_addr) {
            return Err(format!(
                "#{n}: completion {:?} is not tx addr {tx_addr:#x}",
                self.completion
            ));
        }
        if self.refill != Some(fill_frame) {
            return Err(format!("#{n}: refill {:?} is not frame {fill_frame:#x}", self.refill));
        }
        if self.request.is_none() || self.checksums.is_empty() {
            return Err(format!("#{n}: no request or checksum lines"));
        }
        for c in &self.checksums {
            if c.recompute() != c.new {
                return Err(format!(
                    "#{n}: {} checksum: the arithmetic gives {:#06x}, not {:#06x}",
                    c.which,
                    c.recompute(),
                    c.new
                ));
            }
        }
        Ok(())
    }
}

/// The journeys in `text` (other lines are ignored), in the order of (queue, number).
pub fn parse(text: &str) -> Vec<Journey> {
    let mut journeys: BTreeMap<(u32, u32), Journey> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("trace q") else {
            continue;
        };
        let Some((queue, rest)) = rest.split_once(" #") else {
            continue;
        };
        let Some((number, rest)) = rest.split_once(' ') else {
            continue;
        };
        let (Ok(queue), Ok(number)) = (queue.parse::<u32>(), number.parse::<u32>()) else {
            continue;
        };
        let rest = rest.trim_start();
        let (step, body) = rest.split_once(' ').unwrap_or((rest, ""));
        let body = body.trim_start();
        let j = journeys.entry((queue, number)).or_insert_with(|| Journey {
            number,
            queue,
            ..Journey::default()
        });
        match step {
            "fill" => {
                j.fill = num_after(body, "index ")
                    .zip(hex_after(body, "<- frame "))
                    .map(|(i, f)| (i as u32, f));
                j.filled_before_bind = body.contains("before bind");
            }
            "rx" => {
                j.rx = (|| {
                    Some((
                        hex_after(body, "desc addr ")?,
                        num_after(body, " len ")? as u32,
                        hex_after(body, "= frame ")?,
                        num_after(body, "headroom ")?,
                    ))
                })();
            }
            "request" => {
                let family = body.split(' ').next().unwrap_or("").to_string();
                if let (Some(id), Some(seq)) = (hex_after(body, " id "), num_after(body, " seq ")) {
                    j.request = Some((family, id as u16, seq as u16));
                }
            }
            "rewrite" => {
                if let Some(c) = parse_checksum(body) {
                    j.checksums.push(c);
                }
            }
            "tx" => j.tx = hex_after(body, "desc addr ").zip(num_after(body, " len ").map(|l| l as u32)),
            "completion" => j.completion = hex_after(body, " addr "),
            "refill" => j.refill = hex_after(body, "<- frame "),
            "drop" => {
                j.dropped = Some(body.split(';').next().unwrap_or("").to_string());
                j.refill = hex_after(body, "<- frame ");
            }
            _ => {}
        }
    }
    journeys.into_values().collect()
}

/// `ipv4 header checksum id 0x1880 -> 0xeb6f, …, HC 0xfc00: ~HC 0x03ff + ~m 0xe77f + m' 0xeb6f … = 0x96ee; HC' = ~0x96ee = 0x6911`
fn parse_checksum(body: &str) -> Option<ChecksumLine> {
    let (which, rest) = body.split_once(" checksum ")?;
    let old = hex_after(rest, "HC ")?;
    let arithmetic = rest.split_once(": ")?.1;
    let mut words = Vec::new();
    let mut terms = arithmetic.split(" + ").skip(1);
    while let (Some(m), Some(m_new)) = (terms.next(), terms.next()) {
        let not_m = hex_after(m, "~m ")? as u16;
        let m_new = hex_after(m_new, "m' ")? as u16;
        words.push((!not_m, m_new));
    }
    let new = hex_after(arithmetic.rsplit_once(" = ")?.1, "")?;
    Some(ChecksumLine {
        which: which.to_string(),
        old: old as u16,
        words,
        new: new as u16,
    })
}

fn hex_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits: String = text[start..]
        .strip_prefix("0x")?
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u64::from_str_radix(&digits, 16).ok()
}

fn num_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits: String = text[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of a real trace (copy mode on veth).
    const TRACE: &str = "\
trace q0: copy mode, UMEM 4096 frames x 4096 bytes; before bind, fill index i <- frame i * 0x1000 (frames 0x0..=0xfff000); tracing the next 1 frames; rings: fill prod 4096 cons 0 | rx prod 0 cons 0 | tx prod 0 cons 0 | completion prod 0 cons 0
trace q0 #1 fill       index 0 (slot 0) <- frame 0x0, before bind; fill prod 4096 cons 1
trace q0 #1 rx         index 0 (slot 0) desc addr 0x100 len 98 = frame 0x0 + headroom 256; rx prod 1 cons 1
trace q0 #1 request    IPv4 198.18.77.2 -> 198.18.77.1 echo request id 0x56f0 seq 1, ip length 84
trace q0 #1 rewrite    ipv4 header checksum id 0x1880 -> 0xeb6f, flags/frag 0x4000 -> 0x0000, ttl/protocol 0x4001 -> 0x4001, HC 0xfc00: ~HC 0x03ff + ~m 0xe77f + m' 0xeb6f + ~m 0xbfff + m' 0x0000 + ~m 0xbffe + m' 0x4001 = 0x96ee; HC' = ~0x96ee = 0x6911
trace q0 #1 rewrite    icmp checksum type/code 0x0800 -> 0x0000, HC 0xb57a: ~HC 0x4a85 + ~m 0xf7ff + m' 0x0000 = 0x4285; HC' = ~0x4285 = 0xbd7a
trace q0 #1 tx         index 0 (slot 0) desc addr 0x100 len 98 (same frame, no copy); tx prod 1 cons 0
trace q0 #1 completion index 0 (slot 0) addr 0x100; completion prod 1 cons 1
trace q0 #1 refill     fill index 4096 <- frame 0x0 (headroom masked off); fill prod 4097 cons 1
";

    #[test]
    fn a_real_trace_parses_and_checks() {
        let journeys = parse(TRACE);
        assert_eq!(journeys.len(), 1);
        let j = &journeys[0];
        assert_eq!(j.fill, Some((0, 0)));
        assert_eq!(j.rx, Some((0x100, 98, 0, 256)));
        assert_eq!(j.request, Some(("IPv4".into(), 0x56f0, 1)));
        assert_eq!(j.checksums.len(), 2);
        assert_eq!(j.checksums[1].words, vec![(0x0800, 0x0000)]);
        assert_eq!(j.checksums[0].words[0], (0x1880, 0xeb6f));
        j.check(4096).unwrap();
    }

    #[test]
    fn inconsistencies_are_caught() {
        let broken = TRACE.replace("addr 0x100; completion", "addr 0x1100; completion");
        assert!(parse(&broken)[0].check(4096).unwrap_err().contains("completion"));
        let broken = TRACE.replace("= 0x4285; HC' = ~0x4285 = 0xbd7a", "= 0x4285; HC' = ~0x4285 = 0xbd7b");
        assert!(parse(&broken)[0].check(4096).unwrap_err().contains("arithmetic"));
        let broken = TRACE.replace("desc addr 0x100 len 98 (same", "desc addr 0x200 len 98 (same");
        assert!(parse(&broken)[0].check(4096).unwrap_err().contains("tx addr"));
        let broken = TRACE.replace("index 0 (slot 0) <- frame 0x0,", "index 3 (slot 3) <- frame 0x0,");
        assert!(parse(&broken)[0].check(4096).unwrap_err().contains("at bind"));
    }
}
