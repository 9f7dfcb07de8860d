//! Tensors by name, user states, adapters and adapter stores.
use librecsys::*;

const SMALL: &[(&str, &str)] = &[
    ("data.synthetic_users", "200"),
    ("data.synthetic_items", "60"),
    ("model.max_len", "8"),
    ("model.dim", "16"),
    ("model.blocks", "1"),
];

fn params(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 31 + seed * 7) % 23) as f32 * 0.001 - 0.011).collect()
}

#[test]
fn tensors_and_user_state() {
    let ctx = Context::with(2, 3).unwrap();
    let opts = Options::with(&ctx, SMALL).unwrap();
    let ds = Dataset::synthetic(&ctx, &opts).unwrap();
    let model = Model::new(&ctx, &opts, &ds).unwrap();
    let h: Vec<i32> = ds.user_items(4).unwrap().to_vec();

    let mut blank = Model::new_blank(&ctx, &opts, model.n_items().unwrap()).unwrap();
    let infos = model.tensors().unwrap();
    assert!(!infos.is_empty());
    for t in &infos {
        assert_eq!(t.numel as i64, t.shape.iter().product::<i64>());
        let v = model.get_tensor(&ctx, t.name).unwrap();
        blank.set_tensor(&ctx, t.name, &v).unwrap();
    }
    let e = model.get_tensor(&ctx, "no.such.tensor").unwrap_err();
    assert_eq!(e.code(), librecsys_sys::RECSYS_E_NOT_FOUND as i32);
    assert!(!e.message().is_empty());
    let ids: Vec<String> = (1..=blank.n_items().unwrap()).map(|i| format!("x{}", i)).collect();
    blank.set_item_ids(&ctx, &ids).unwrap();
    assert_eq!(blank.item_id("x3").unwrap(), 3);
    {
        let mut s1 = Session::new(&ctx, &model).unwrap();
        let mut s2 = Session::new(&ctx, &blank).unwrap();
        assert_eq!(s1.score(&h).unwrap(), s2.score(&h).unwrap());

        let mut st = UserState::new(&model).unwrap();
        for &i in &h {
            st.append(i, 0).unwrap();
        }
        assert!(st.bytes().unwrap() > 0);
        let a = s1.score_request(&st.request(5).unwrap()).unwrap();
        let b = s1.score_request(&Request::new(&h, 5)).unwrap();
        assert_eq!(a, b);
        assert_eq!(s1.topk_request(&st.request(5).unwrap()).unwrap(), s1.topk_request(&Request::new(&h, 5)).unwrap());
        // through the state (positions from the end: the same forward, the same bits)
        assert_eq!(s1.topk_state(&mut st, &Request::new(&[], 5)).unwrap(), s1.topk_request(&Request::new(&h, 5)).unwrap());
        assert_eq!(s1.score_state(&mut st, &Request::new(&[], 5)).unwrap(), b);
        assert!(s1.topk_state(&mut st, &Request::new(&h, 5)).is_err());
        let e = st.append(10_000, 0).unwrap_err();
        assert!(!e.message().is_empty());
        st.clear().unwrap();
        assert!(st.request(5).unwrap().history.is_empty());
    }
}

#[test]
fn adapters_and_store() {
    let ctx = Context::with(2, 3).unwrap();
    let opts = Options::with(&ctx, SMALL).unwrap();
    let ds = Dataset::synthetic(&ctx, &opts).unwrap();
    let model = Model::new(&ctx, &opts, &ds).unwrap();

    let mut a = Adapter::new(&ctx, &model, Some(&opts), AdapterKind::User).unwrap();
    let info = a.info().unwrap();
    assert_eq!(info.kind, AdapterKind::User);
    assert!(info.rank > 0 && info.n_params > 0);
    let p = params(info.n_params, 1);
    a.set_params(&p).unwrap();
    assert_eq!(a.params().unwrap(), p);
    let mut buf = a.to_buffer().unwrap();
    let b = Adapter::from_buffer(&ctx, &model, &buf).unwrap();
    assert_eq!(b.params().unwrap(), p);
    buf.truncate(buf.len() - 3);
    let e = Adapter::from_buffer(&ctx, &model, &buf).err().unwrap();
    assert_eq!(e.code(), librecsys_sys::RECSYS_E_FORMAT as i32);
    let mut bad = p.clone();
    bad[0] = f32::NAN;
    let e = a.set_params(&bad).unwrap_err();
    assert_eq!(e.code(), librecsys_sys::RECSYS_E_NUMERIC as i32);
    assert!(e.message().contains("finite"), "{}", e.message());

    let mut c = Adapter::new(&ctx, &model, Some(&opts), AdapterKind::User).unwrap();
    c.set_params(&params(info.n_params, 2)).unwrap();
    let m = Adapter::merge(&ctx, &[&a, &c], &[0.5, 0.5], Some(&opts)).unwrap();
    assert_eq!(m.info().unwrap().n_params, info.n_params);
    let folded = a.fold().unwrap();
    assert_eq!(folded.n_items().unwrap(), model.n_items().unwrap());
    {
        // a request carrying the adapter scores as the folded model
        let mut sb = Session::new(&ctx, &model).unwrap();
        let mut sf = Session::new(&ctx, &folded).unwrap();
        let h = [1, 2, 3];
        let x = sb.score_request(&Request::new(&h, 5).adapter(&a)).unwrap();
        let y = sf.score_request(&Request::new(&h, 5)).unwrap();
        for i in 1..x.len() {
            assert!((x[i] - y[i]).abs() <= 1e-5, "{} {} {}", i, x[i], y[i]);
        }
    }

    let path = std::env::temp_dir().join(format!("librecsys-rs-store-{}.store", std::process::id()));
    let path = path.to_str().unwrap().to_string();
    AdapterStore::create(&ctx, &model, &opts, &path, 3).unwrap();
    {
        let st = AdapterStore::open(&ctx, &model, &path, true, Some(&opts)).unwrap();
        let e = st.get(1).err().unwrap();
        assert_eq!(e.code(), librecsys_sys::RECSYS_E_NOT_FOUND as i32);
        st.put(1, &a, true).unwrap();
        st.pin(1, true).unwrap();
        assert_eq!(st.get(1).unwrap().params().unwrap(), p);
        assert_eq!(st.stats().unwrap().n_users, 3);
        st.pin(1, false).unwrap();
    }
    let image = std::fs::read(&path).unwrap();
    let ro = AdapterStore::open_buffer(&ctx, &model, &image, Some(&opts)).unwrap();
    assert_eq!(ro.get(1).unwrap().params().unwrap(), p);
    std::fs::remove_file(&path).unwrap();

    // the adapter holds the model: dropping the Model first is fine
    let m2 = Model::new(&ctx, &opts, &ds).unwrap();
    let a2 = Adapter::new(&ctx, &m2, None, AdapterKind::User).unwrap();
    drop(m2);
    assert!(a2.fold().is_ok());
}

#[test]
fn adapter_train_and_evaluate() {
    let ctx = Context::with(2, 3).unwrap();
    let opts = Options::with(&ctx, SMALL).unwrap();
    opts.set("adapter.epochs", "1").unwrap();
    opts.set("adapter.user_steps", "2").unwrap();
    let ds = Dataset::synthetic(&ctx, &opts).unwrap();
    let model = Model::new(&ctx, &opts, &ds).unwrap();
    let mut shared = Adapter::new(&ctx, &model, Some(&opts), AdapterKind::Shared).unwrap();
    assert!(shared.train(&ds, -1, Some(&opts)).unwrap().is_finite());
    let mut user = Adapter::new(&ctx, &model, Some(&opts), AdapterKind::User).unwrap();
    assert!(user.train(&ds, 0, Some(&opts)).unwrap().is_finite());
    assert!(user.train_sequence(&[1, 2, 3, 2], None, Some(&opts)).unwrap().is_finite());
    assert!(user.train_sequence(&[1], None, Some(&opts)).is_err());
    let mut ranks = vec![0f64; ds.n_users() as usize];
    let m = evaluate_adapters(&ctx, &model, Some(&shared), None, &ds, &opts, Some(&mut ranks)).unwrap();
    assert!(m.get("NDCG@10").unwrap() >= 0.0);
    let base = evaluate(&ctx, &model, &ds, &opts).unwrap();
    let same = evaluate_adapters(&ctx, &model, None, None, &ds, &opts, None).unwrap();
    assert_eq!(base.get("NDCG@10").unwrap(), same.get("NDCG@10").unwrap());
    let e = user.train(&ds, 1 << 40, Some(&opts)).unwrap_err();
    assert!(!e.message().is_empty());
}
