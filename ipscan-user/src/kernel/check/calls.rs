//! Which BPF global functions each function of the eBPF object reaches through its calls, read
//! from the object's symbols, code and relocations.
//!
//! The kernel verifies every global function a program reaches, each once, on its own; a
//! harness that calls one global function therefore also pays for the global functions that
//! one reaches. `ipscan check` subtracts them to give each function its own cost.

use std::collections::{BTreeMap, BTreeSet};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget, SectionIndex, SymbolKind};

/// Size of one BPF instruction.
const INSN: u64 = 8;
/// BPF_JMP | BPF_CALL.
const CALL: u8 = 0x85;
/// The source-register value that marks a call of a BPF function (not a helper).
const PSEUDO_CALL: u8 = 1;

/// Instruction classes (the low three bits of the opcode) that access memory through a
/// register and an offset.
const LDX: u8 = 1;
const ST: u8 = 2;
const STX: u8 = 3;
/// The frame pointer register.
const R10: u8 = 10;
/// What the kernel allows the frames of one call chain, together (MAX_BPF_STACK).
pub const STACK_LIMIT: u64 = 512;

/// A function symbol: its section, offset and size in bytes, and whether it is global.
struct Func {
    name: String,
    section: SectionIndex,
    address: u64,
    size: u64,
    global: bool,
}

/// The object's functions and, for each, the global functions its calls reach (itself not
/// included unless it calls itself).
#[derive(Debug, Default)]
pub struct Calls {
    reach: BTreeMap<String, BTreeSet<String>>,
    /// Each function's direct callees (BPF functions, not helpers).
    direct: BTreeMap<String, BTreeSet<String>>,
    /// Each function's stack frame: the deepest byte below r10 its code reads or writes.
    frames: BTreeMap<String, u64>,
}

impl Calls {
    /// Reads the call graph of an eBPF object file.
    pub fn of(elf: &[u8]) -> Result<Self, object::Error> {
        let file = object::File::parse(elf)?;
        let funcs: Vec<Func> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
            .filter_map(|s| {
                Some(Func {
                    name: s.name().ok()?.to_owned(),
                    section: s.section_index()?,
                    address: s.address(),
                    size: s.size(),
                    global: s.is_global(),
                })
            })
            .collect();
        let at = |section: SectionIndex, address: u64| {
            funcs.iter().find(|f| f.section == section && f.address == address).map(|f| f.name.clone())
        };
        let mut direct: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut frames: BTreeMap<String, u64> = BTreeMap::new();
        for f in &funcs {
            let section = file.section_by_index(f.section)?;
            let data = section.data()?;
            let relocations: BTreeMap<u64, RelocationTarget> =
                section.relocations().map(|(off, r)| (off, r.target())).collect();
            let callees = direct.entry(f.name.clone()).or_default();
            let frame = frames.entry(f.name.clone()).or_default();
            let mut off = f.address;
            while off + INSN <= f.address + f.size {
                let Some(insn) = data.get(off as usize..(off + INSN) as usize) else { break };
                let (class, dst, src) = (insn[0] & 7, insn[1] & 0x0f, insn[1] >> 4);
                let disp = i16::from_le_bytes([insn[2], insn[3]]);
                if ((class == LDX && src == R10) || ((class == ST || class == STX) && dst == R10)) && disp < 0 {
                    *frame = (*frame).max(u64::from(disp.unsigned_abs()));
                }
                if insn[0] == CALL && insn[1] >> 4 == PSEUDO_CALL {
                    let imm = i64::from(i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]));
                    let callee = match relocations.get(&off) {
                        Some(RelocationTarget::Symbol(i)) => {
                            let sym = file.symbol_by_index(*i)?;
                            match sym.kind() {
                                SymbolKind::Section => sym
                                    .section_index()
                                    .and_then(|s| at(s, sym.address().wrapping_add(((imm + 1) * INSN as i64) as u64))),
                                _ => sym.name().ok().map(str::to_owned),
                            }
                        }
                        Some(_) => None,
                        None => at(f.section, (off as i64 + (imm + 1) * INSN as i64) as u64),
                    };
                    if let Some(c) = callee {
                        callees.insert(c);
                    }
                }
                off += INSN;
            }
        }
        let globals: BTreeSet<String> = funcs.iter().filter(|f| f.global).map(|f| f.name.clone()).collect();
        let mut reach = BTreeMap::new();
        for name in direct.keys() {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<&String> = direct[name].iter().collect();
            while let Some(n) = todo.pop() {
                if seen.insert(n.clone())
                    && let Some(next) = direct.get(n)
                {
                    todo.extend(next);
                }
            }
            seen.retain(|n| globals.contains(n));
            reach.insert(name.clone(), seen);
        }
        Ok(Self { reach, direct, frames })
    }

    /// The bytes of stack `name`'s code uses below its frame pointer.
    pub fn frame(&self, name: &str) -> u64 {
        self.frames.get(name).copied().unwrap_or(0)
    }

    /// The deepest call chain from `name`, as the kernel adds it up (each frame rounded up to
    /// 32 bytes): the functions along it and the bytes.
    pub fn deepest_chain(&self, name: &str) -> (Vec<String>, u64) {
        let frame = self.frames.get(name).copied().unwrap_or(0).max(1).next_multiple_of(32);
        let below = self
            .direct
            .get(name)
            .into_iter()
            .flatten()
            .filter(|c| *c != name)
            .map(|c| self.deepest_chain(c))
            .max_by_key(|(_, bytes)| *bytes)
            .unwrap_or_default();
        let mut chain = vec![name.to_owned()];
        chain.extend(below.0);
        (chain, frame + below.1)
    }

    /// The global functions `name`'s calls reach, directly or through other functions.
    pub fn reached_from(&self, name: &str) -> impl Iterator<Item = &str> {
        self.reach.get(name).into_iter().flatten().map(String::as_str)
    }
}
