use librecsys::*;
use std::sync::atomic::{AtomicUsize, Ordering};

const SMALL: &[(&str, &str)] = &[
    ("data.synthetic_users", "300"),
    ("data.synthetic_items", "80"),
    ("model.max_len", "16"),
    ("model.dim", "16"),
    ("model.blocks", "1"),
    ("trainer.batch_size", "64"),
    ("eval.split", "test"),
];

#[test]
fn version_matches() {
    check_version().unwrap();
    assert!(!version().is_empty());
}

#[test]
fn errors_carry_status_and_message() {
    let ctx = Context::with(1, 7).unwrap();
    let opts = Options::with(&ctx, SMALL).unwrap();
    let e = opts.set("model.no_such_key", "1").unwrap_err();
    assert_eq!(e.code(), RECSYS_E_NOT_FOUND);
    assert_eq!(e.name(), "RECSYS_E_NOT_FOUND");
    assert!(e.message().contains("no_such_key"), "{}", e);
    assert!(ctx.errmsg().contains("no_such_key"));
    opts.set("model.dim", "16").unwrap();
    assert_eq!(ctx.errmsg(), "");
    let ds = Dataset::synthetic(&ctx, &opts).unwrap();
    let e = ds.stat(99).unwrap_err();
    assert_eq!(e.code(), RECSYS_E_INVALID);
    assert!(e.message().contains("statistic"), "{}", e);
    assert!(ds.item_id("nope").unwrap_err().message().contains("nope"));
    let e = Dataset::open(&ctx, "/no/such/file.txt", &opts).err().unwrap();
    assert_eq!(e.code(), RECSYS_E_IO);
    let model = Model::new(&ctx, &opts, &ds).unwrap();
    assert_eq!(model.get("trainer.lr").unwrap_err().code(), RECSYS_E_NOT_FOUND);
    assert!(Model::load(&ctx, "/no/such.ckpt").is_err());
    assert!(opts.set("a\0b", "1").is_err());
}

#[test]
fn train_evaluate_save_load_topk() {
    let ctx = Context::with(2, 7).unwrap();
    let opts = Options::with(&ctx, SMALL).unwrap();
    assert!(opts.keys().iter().any(|k| k == "model.dim"));
    let ds = Dataset::synthetic(&ctx, &opts).unwrap();
    let mut model = Model::new(&ctx, &opts, &ds).unwrap();
    let calls = AtomicUsize::new(0);
    {
        let mut t = Trainer::new(&ctx, &mut model, &ds, &opts).unwrap();
        t.set_progress(Some(|p: &Progress| {
            calls.fetch_add(1, Ordering::Relaxed);
            p.step >= 2
        }))
        .unwrap();
        assert_eq!(t.run_epoch().unwrap_err().code(), RECSYS_E_ABORTED);
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        t.set_progress(None::<fn(&Progress) -> bool>).unwrap();
        let l1 = t.run_epoch().unwrap();
        let l2 = t.run_epoch().unwrap();
        assert!(l1.is_finite() && l2.is_finite());
    }
    let m = evaluate(&ctx, &model, &ds, &opts).unwrap();
    assert!(m.get("users").unwrap() > 0.0);
    assert_eq!(m.get("NOPE").unwrap_err().code(), RECSYS_E_NOT_FOUND);
    let dir = std::env::temp_dir().join(format!("librecsys-rs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.ckpt");
    model.save(&ctx, path.to_str().unwrap()).unwrap();
    let again = Model::load(&ctx, path.to_str().unwrap()).unwrap();
    let hist = ds.user_items(0).unwrap();
    let a = Session::new(&ctx, &model).unwrap().topk(hist, 5, true).unwrap();
    let b = Session::new(&ctx, &again).unwrap().topk(hist, 5, true).unwrap();
    assert_eq!(a, b);
    let mut s = Session::new(&ctx, &again).unwrap();
    let scores = s.score(hist).unwrap();
    assert_eq!(scores.len(), again.n_items().unwrap() as usize + 1);
    assert!(scores[0].is_infinite());
    let mut small = [0f32; 3];
    assert_eq!(s.score_into(hist, &mut small).unwrap_err().code(), RECSYS_E_INVALID);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn panic_in_callback_is_resumed_not_unwound_through_c() {
    let ctx = Context::with(1, 7).unwrap();
    let opts = Options::with(&ctx, SMALL).unwrap();
    let ds = Dataset::synthetic(&ctx, &opts).unwrap();
    let mut model = Model::new(&ctx, &opts, &ds).unwrap();
    let mut t = Trainer::new(&ctx, &mut model, &ds, &opts).unwrap();
    t.set_progress(Some(|_: &Progress| -> bool { panic!("from the closure") })).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.run_epoch()));
    let payload = r.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"from the closure"));
    t.set_progress(None::<fn(&Progress) -> bool>).unwrap();
    assert!(t.run_epoch().unwrap().is_finite());
}

#[test]
fn dataset_and_model_outlive_ctx() {
    let (ds, model) = {
        let ctx = Context::with(1, 3).unwrap();
        let opts = Options::with(&ctx, SMALL).unwrap();
        let ds = Dataset::synthetic(&ctx, &opts).unwrap();
        let model = Model::new(&ctx, &opts, &ds).unwrap();
        (ds, model)
    };
    let ctx = Context::with(1, 3).unwrap();
    let mut s = Session::new(&ctx, &model).unwrap();
    assert_eq!(s.topk(ds.user_items(1).unwrap(), 3, false).unwrap().0.len(), 3);
}

#[test]
fn concurrent_scoring_on_shared_model() {
    let ctx = Context::with(2, 7).unwrap();
    let opts = Options::with(&ctx, SMALL).unwrap();
    let ds = Dataset::synthetic(&ctx, &opts).unwrap();
    let model = Model::new(&ctx, &opts, &ds).unwrap();
    let users: Vec<i64> = (0..40).collect();
    let expect: Vec<_> = {
        let mut s = Session::new(&ctx, &model).unwrap();
        users.iter().map(|&u| s.topk(ds.user_items(u).unwrap(), 5, true).unwrap()).collect()
    };
    let bad = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for t in 0..4u64 {
            let (model, ds, users, expect, bad) = (&model, &ds, &users, &expect, &bad);
            sc.spawn(move || {
                let tctx = Context::with(1, t).unwrap();
                let mut s = Session::new(&tctx, model).unwrap();
                for _ in 0..3 {
                    for (i, &u) in users.iter().enumerate() {
                        if s.topk(ds.user_items(u).unwrap(), 5, true).unwrap() != expect[i] {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                        let e = ds.stat(1000 + t as i32).unwrap_err();
                        if !e.message().contains(&(1000 + t).to_string()) {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    assert_eq!(bad.load(Ordering::Relaxed), 0);
}

#[test]
fn apen_and_perflaw() {
    let ctx = Context::with(1, 1).unwrap();
    let opts = Options::new(&ctx).unwrap();
    let mut a = ApEn::new(&ctx, &opts).unwrap();
    assert!(a.sequence(&[1, 2, 1, 2, 1, 2, 1, 2]).unwrap().is_finite());
    let mut p = PerfLaw::new(&ctx).unwrap();
    assert!(p.fit().is_err());
}
