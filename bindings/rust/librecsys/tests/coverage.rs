//! Every public C function (RECSYS_API in recsys.h) is called by the safe
//! layer (src/lib.rs), or named in ALLOW with the reason it is left out.
const HEADER: &str = include_str!("../../../../include/librecsys/recsys.h");
const SAFE: &str = include_str!("../src/lib.rs");

/// Deliberate exclusions: (function, reason). Each stays callable through librecsys_sys.
const ALLOW: &[(&str, &str)] = &[
    ("recsys_adapter_inspect", "adapter file tooling behind `recsys adapters inspect` (a versioned info struct); callable raw"),
    ("recsys_adapter_inspect_user", "adapter file tooling behind `recsys adapters inspect` (a versioned info struct); callable raw"),
    ("recsys_trainer_set_collective", "dist: distributed training needs a collective table of C callbacks from the program (docs/DISTRIBUTED.md); callable raw"),
    ("recsys_trainer_comm_stats", "dist: distributed training needs a collective table of C callbacks from the program (docs/DISTRIBUTED.md); callable raw"),
    ("recsys_evaluate_distributed", "dist: distributed training needs a collective table of C callbacks from the program (docs/DISTRIBUTED.md); callable raw"),
];

fn header_functions() -> Vec<&'static str> {
    HEADER
        .lines()
        .filter(|l| l.starts_with("RECSYS_API "))
        .filter_map(|l| {
            let open = l.find('(')?;
            let start = l[..open].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))? + 1;
            Some(&l[start..open])
        })
        .collect()
}

fn mentioned(name: &str, text: &str) -> bool {
    let word = |c: Option<char>| c.map_or(false, |c| c.is_ascii_alphanumeric() || c == '_');
    text.match_indices(name).any(|(i, _)| !word(text[..i].chars().last()) && !word(text[i + name.len()..].chars().next()))
}

#[test]
fn every_function_wrapped() {
    let fns = header_functions();
    assert!(fns.len() > 90, "parsed only {} functions", fns.len());
    let mut bad = Vec::new();
    for f in &fns {
        let allowed = ALLOW.iter().any(|(a, _)| a == f);
        match (mentioned(f, SAFE), allowed) {
            (false, false) => bad.push(format!("{}: not wrapped (wrap it or allow-list it)", f)),
            (true, true) => bad.push(format!("{}: allow-listed but wrapped", f)),
            _ => {}
        }
    }
    for (a, why) in ALLOW {
        assert!(!why.is_empty());
        if !fns.contains(a) {
            bad.push(format!("{}: allow-listed but not in the header", a));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
