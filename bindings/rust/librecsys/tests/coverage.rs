//! Every public C function (RECSYS_API in recsys.h) is called by the safe
//! layer (src/lib.rs), or named in ALLOW with the reason it is left out.
const HEADER: &str = include_str!("../../../../include/librecsys/recsys.h");
const SAFE: &str = include_str!("../src/lib.rs");

/// Deliberate exclusions: (function, reason). Each stays callable through librecsys_sys.
const ALLOW: &[(&str, &str)] = &[
    ("recsys_free", "no call returns memory for the caller to free (recsys.h)"),
    ("recsys_trainer_set_collective", "dist: distributed training needs a collective table of C callbacks from the program (docs/DISTRIBUTED.md); callable raw"),
    ("recsys_trainer_comm_stats", "dist: distributed training needs a collective table of C callbacks from the program (docs/DISTRIBUTED.md); callable raw"),
    ("recsys_evaluate_distributed", "dist: distributed training needs a collective table of C callbacks from the program (docs/DISTRIBUTED.md); callable raw"),
    // TODO(serving2): not wrapped yet (callable through librecsys_sys).
    ("recsys_model_new_blank", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    ("recsys_model_tensor_count", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    ("recsys_model_tensor_info", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    ("recsys_model_get_tensor", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    ("recsys_model_set_tensor", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    ("recsys_model_set_item_ids", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    ("recsys_user_state_new", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    ("recsys_user_state_free", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    ("recsys_user_state_append", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    ("recsys_user_state_clear", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    ("recsys_user_state_request", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    ("recsys_user_state_bytes", "TODO(serving2): tensor import/export and user state, landed with the serving2 merge, not wrapped yet"),
    // TODO(adapters): landed with the last merge of main, not wrapped yet (callable through librecsys_sys).
    ("recsys_adapter_new", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_train", "TODO(adapters): added on the adapters2 branch, not wrapped yet"),
    ("recsys_evaluate_adapters", "TODO(adapters): added on the adapters2 branch, not wrapped yet"),
    ("recsys_adapter_free", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_info", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_get_params", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_set_params", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_to_buffer", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_from_buffer", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_merge", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_fold", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_store_create", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_store_open", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_store_open_buffer", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_store_close", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_store_get", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_store_put", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_store_pin", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
    ("recsys_adapter_store_stats", "TODO(adapters): landed with the last merge of main, not wrapped yet"),
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
