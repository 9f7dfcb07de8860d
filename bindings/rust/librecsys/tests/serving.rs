//! Serving API: model info after reload, external ids, item table views,
//! requests (times, exclusions, candidates), batch == single, pools,
//! options description, loaders and analysis calls.
use librecsys::*;
use std::io::Write;

const SMALL: &[(&str, &str)] = &[
    ("model.max_len", "8"),
    ("model.dim", "16"),
    ("model.blocks", "1"),
    ("trainer.batch_size", "64"),
];

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("librecsys-rs-{}-{}", tag, std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn serving_api() {
    let dir = tmpdir("serve");
    let ctx = Context::with(2, 3).unwrap();
    let opts = Options::with(&ctx, SMALL).unwrap();
    let mut users = Vec::new();
    let mut items = Vec::new();
    let mut times = Vec::new();
    for u in 0..50i64 {
        for j in 0..10i64 {
            users.push(u);
            items.push(2000 + (u * 7 + j * 3) % 35);
            times.push(j * 60);
        }
    }
    let ds = Dataset::from_arrays(&ctx, &users, &items, Some(&times), &opts).unwrap();
    let mut model = Model::new(&ctx, &opts, &ds).unwrap();
    {
        let mut t = Trainer::new(&ctx, &mut model, &ds, &opts).unwrap();
        t.run_epoch().unwrap();
        let ck = dir.join("t.ckpt");
        t.save_checkpoint(ck.to_str().unwrap()).unwrap();
        t.resume(ck.to_str().unwrap()).unwrap();
        assert_eq!(t.epoch(), 1);
        let _ = t.eval_due();
    }
    let path = dir.join("m.ckpt");
    model.save(&ctx, path.to_str().unwrap()).unwrap();
    let loaded = Model::load(&ctx, path.to_str().unwrap()).unwrap();
    let (a, b) = (model.info().unwrap(), loaded.info().unwrap());
    assert_eq!(b.n_items, ds.n_items());
    assert_eq!((b.dim, b.max_len, b.blocks, b.r#type), (16, 8, 1, RECSYS_MODEL_SASREC));
    assert_eq!((b.has_item_ids, b.data_has_time, b.n_users), (1, 1, 50));
    assert_eq!((a.n_params, a.data_fingerprint), (b.n_params, b.data_fingerprint));
    drop(model);

    // external ids
    let i = loaded.item_id("2005").unwrap();
    assert_eq!(i, ds.item_id("2005").unwrap());
    assert_eq!(loaded.item_name(i).unwrap(), "2005");
    assert_eq!(loaded.item_id("nope").unwrap_err().code(), RECSYS_E_NOT_FOUND);

    // item table: a borrow of the model
    let tab = loaded.item_table().unwrap();
    assert_eq!((tab.rows, tab.dim), (b.n_items as usize + 1, 16));
    let vecs = loaded.item_vectors().unwrap();
    let mut s = Session::new(&ctx, &loaded).unwrap();
    let h = ds.user_items(3).unwrap();
    let ht = ds.user_times(3).unwrap().unwrap();
    let req = Request::new(h, 5).times(ht);
    let u = s.user_vector(&req).unwrap();
    let full = s.score_request(&req).unwrap();
    for item in 1..tab.rows {
        let dot: f32 = u.iter().zip(vecs.row(item)).map(|(x, y)| x * y).sum();
        assert!((dot - full[item]).abs() < 1e-3, "{} {} {}", item, dot, full[item]);
    }
    assert_eq!(s.score_request(&Request::new(h, 5)).unwrap(), s.score(h).unwrap());

    // exclusions and candidates
    let mut mask = vec![0u8; tab.rows];
    mask[4] = 1;
    let ex = [1, 2];
    let sx = s.score_request(&Request::new(h, 5).exclude(&ex).exclude_mask(&mask).exclude_history(true)).unwrap();
    assert!(sx[1].is_infinite() && sx[2].is_infinite() && sx[4].is_infinite());
    assert!(h.iter().all(|&i| sx[i as usize].is_infinite()));
    let bad = [0u8; 3];
    assert_eq!(s.score_request(&Request::new(h, 5).exclude_mask(&bad)).unwrap_err().code(), RECSYS_E_INVALID);
    let cands = [6, 3, 9];
    let cs = s.score_request(&req.candidates(&cands)).unwrap();
    assert_eq!(cs, vec![full[6], full[3], full[9]]);
    let only3 = [3];
    let (ti, _) = s.topk_request(&req.candidates(&cands).exclude(&only3)).unwrap();
    assert_eq!(ti.len(), 2);
    assert!(!ti.contains(&3));
    assert_eq!(s.topk_request(&Request::new(&[9999], 5)).unwrap_err().code(), RECSYS_E_NOT_FOUND);

    // batch == single
    let mut reqs: Vec<Request> = (0..10)
        .map(|u| Request::new(ds.user_items(u).unwrap(), 6).times(ds.user_times(u).unwrap().unwrap()).exclude_history(true))
        .collect();
    reqs[4].k = 3;
    let batch = s.topk_batch(&reqs).unwrap();
    assert_eq!((batch.stride, batch.len(), batch.counts[4]), (6, 10, 3));
    for (r, q) in reqs.iter().enumerate() {
        let (i1, s1) = s.topk_request(q).unwrap();
        assert_eq!(batch.items(r), &i1[..]);
        assert_eq!(batch.scores(r), &s1[..]);
    }
    let (ti, ts) = s.topk(ds.user_items(0).unwrap(), 6, true).unwrap();
    let (bi, bs) = s.topk_request(&Request::new(ds.user_items(0).unwrap(), 6).exclude_history(true)).unwrap();
    assert_eq!((ti, ts), (bi, bs));
    assert!(s.topk_batch(&[]).unwrap().is_empty());
    drop(s);

    // pools
    let pool = ThreadPool::new(2).unwrap();
    let pa = Context::shared(&pool).unwrap();
    let pb = Context::shared(&pool).unwrap();
    drop(pool);
    assert_eq!(pa.set_threads(3).unwrap_err().code(), RECSYS_E_STATE);
    let one = Context::with_max_threads(1).unwrap();
    let want = Session::new(&one, &loaded).unwrap().topk(h, 5, true).unwrap();
    assert_eq!(Session::new(&pa, &loaded).unwrap().topk(h, 5, true).unwrap(), want);
    assert_eq!(Session::new(&pb, &loaded).unwrap().topk(h, 5, true).unwrap(), want);
    assert!(ThreadPool::new(0).is_err());
    assert!(Context::with_max_threads(0).is_err());

    // analysis
    let aopts = Options::new(&ctx).unwrap();
    let mut ap = ApEn::new(&ctx, &aopts).unwrap();
    let (mean, per_user, used) = ap.dataset(&ds).unwrap();
    assert_eq!(per_user.len(), 50);
    assert!(used > 0 && mean >= 0.0);
    assert!(ap.numeric(&[1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0]).unwrap() >= 0.0);
    let mut pl = PerfLaw::new(&ctx).unwrap();
    for &l in &[1.0f64, 2.0, 4.0] {
        for &hd in &[16.0f64, 32.0, 64.0] {
            for &d in &[1.0f64, 4.0] {
                pl.add(l, hd, d, 0.1 + 0.02 * l.ln() + 0.01 * hd.ln() + 0.03 * d.ln()).unwrap();
            }
        }
    }
    match pl.fit() {
        Ok(()) => {
            let (p, e, _r2) = pl.params().unwrap();
            assert_eq!((p.len(), e.len()), (6, 6));
            let (bl, bh, bm) = pl.best_size(4.0, &[1.0, 2.0, 4.0], &[16.0, 64.0]).unwrap();
            assert_eq!(bm, pl.predict(bl, bh, 4.0).unwrap());
        }
        Err(e) => assert_eq!(e.code(), RECSYS_E_NUMERIC),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn loaders_yaml_and_describe() {
    let dir = tmpdir("load");
    let ctx = Context::with(1, 5).unwrap();
    let opts = Options::new(&ctx).unwrap();
    let mut f = std::fs::File::create(dir.join("ev.txt")).unwrap();
    for u in 0..20 {
        for j in 0..6 {
            writeln!(f, "u{}\t{}\t{}", u, 100 + (u + j * 3) % 15, j).unwrap();
        }
    }
    let ev = Dataset::load(&ctx, dir.join("ev.txt").to_str().unwrap(), Some(&opts)).unwrap();
    assert_eq!(ev.n_users(), 20);
    assert_eq!(ev.user_name(ev.user_id("u4").unwrap()).unwrap(), "u4");
    let (mut sf, mut tf) = (std::fs::File::create(dir.join("s.txt")).unwrap(), std::fs::File::create(dir.join("t.txt")).unwrap());
    for u in 0..15 {
        writeln!(sf, "{} 1 2 3 4 5", u).unwrap();
        writeln!(tf, "{} 10 20 30 40 50", u).unwrap();
    }
    let (sp, tp) = (dir.join("s.txt"), dir.join("t.txt"));
    let sq = Dataset::load_sequences(&ctx, sp.to_str().unwrap(), Some(tp.to_str().unwrap()), None).unwrap();
    assert_eq!(sq.user_times(0).unwrap().unwrap().len(), 5);
    assert!(Dataset::load_sequences(&ctx, sp.to_str().unwrap(), None, None).unwrap().user_times(0).unwrap().is_none());
    assert_eq!(Dataset::load(&ctx, "/no/such.txt", None).err().unwrap().code(), RECSYS_E_IO);

    std::fs::write(dir.join("ok.yaml"), "model:\n  dim: 24\ntrainer:\n  lr: 0.01\n").unwrap();
    opts.load_yaml(dir.join("ok.yaml").to_str().unwrap()).unwrap();
    assert_eq!(opts.get_int("model.dim").unwrap(), 24);
    assert_eq!(opts.get_float("trainer.lr").unwrap(), 0.01);
    std::fs::write(dir.join("bad.yaml"), "model:\n  dim: [oops\n").unwrap();
    let e = opts.load_yaml(dir.join("bad.yaml").to_str().unwrap()).unwrap_err();
    assert_eq!(e.code(), RECSYS_E_PARSE);
    assert_eq!(last_error().0, RECSYS_E_PARSE);
    let (file, line, _) = ctx.error_location().unwrap();
    assert!(file.ends_with("bad.yaml") && line >= 1);
    assert_eq!(version_number(), librecsys_sys::RECSYS_VERSION_NUMBER);

    let d = describe_options().unwrap();
    assert_eq!(d.len(), opts.keys().len());
    let dim = d.iter().find(|o| o.key == "model.dim").unwrap();
    assert!(dim.kind == RECSYS_OPT_INT && dim.max >= 64.0 && !dim.doc.is_empty());
    for o in &d {
        if o.kind == RECSYS_OPT_ENUM {
            assert!(o.choices.contains(&o.default), "{:?}", o);
        } else {
            assert!(o.choices.is_empty());
        }
        if o.kind == RECSYS_OPT_INT || o.kind == RECSYS_OPT_FLOAT {
            let v: f64 = o.default.parse().unwrap();
            assert!(o.min <= v && v <= o.max, "{:?}", o);
        }
    }
    assert_eq!(opts.describe().unwrap(), d);
    std::fs::remove_dir_all(&dir).ok();
}
