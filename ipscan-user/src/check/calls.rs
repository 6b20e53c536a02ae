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
    globals: BTreeSet<String>,
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
        for f in &funcs {
            let section = file.section_by_index(f.section)?;
            let data = section.data()?;
            let relocations: BTreeMap<u64, RelocationTarget> =
                section.relocations().map(|(off, r)| (off, r.target())).collect();
            let callees = direct.entry(f.name.clone()).or_default();
            let mut off = f.address;
            while off + INSN <= f.address + f.size {
                let Some(insn) = data.get(off as usize..(off + INSN) as usize) else { break };
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
        Ok(Self { reach, globals })
    }

    /// The global functions `name`'s calls reach, directly or through other functions.
    pub fn reached_from(&self, name: &str) -> impl Iterator<Item = &str> {
        self.reach.get(name).into_iter().flatten().map(String::as_str)
    }

    /// Whether the object has a global function of this name.
    pub fn is_global(&self, name: &str) -> bool {
        self.globals.contains(name)
    }
}
