//! One example, four languages (Rust here): train on the embedded synthetic
//! data, evaluate, save, reload, recommend the top 5 for users 0 and 1 in one batch call.
//!     cargo run --offline --example example -- [checkpoint path]
use librecsys::{evaluate, Context, Dataset, Model, Options, Request, Session, Trainer};

fn main() -> Result<(), librecsys::Error> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "example_model.ckpt".to_string());
    librecsys::check_version()?;
    let ctx = Context::with(2, 42)?;
    let opts = Options::with(
        &ctx,
        &[
            ("data.synthetic_users", "300"),
            ("data.synthetic_items", "80"),
            ("data.synthetic_length", "25"),
            ("model.max_len", "16"),
            ("model.dim", "16"),
            ("model.blocks", "1"),
            ("trainer.batch_size", "64"),
            ("trainer.lr", "0.005"),
            ("eval.split", "test"),
        ],
    )?;
    let ds = Dataset::synthetic(&ctx, &opts)?;
    let mut model = Model::new(&ctx, &opts, &ds)?;
    {
        let mut trainer = Trainer::new(&ctx, &mut model, &ds, &opts)?;
        for epoch in 1..=3 {
            println!("epoch {} loss {:.6}", epoch, trainer.run_epoch()?);
        }
    }
    let m = evaluate(&ctx, &model, &ds, &opts)?;
    println!(
        "test HR@10 {:.6} NDCG@10 {:.6} MRR {:.6} users {:.0}",
        m.get("HR@10")?,
        m.get("NDCG@10")?,
        m.get("MRR")?,
        m.get("users")?
    );
    model.save(&ctx, &path)?;
    let loaded = Model::load(&ctx, &path)?;
    let m2 = evaluate(&ctx, &loaded, &ds, &opts)?;
    println!("reloaded HR@10 {:.6} NDCG@10 {:.6}", m2.get("HR@10")?, m2.get("NDCG@10")?);
    // One batch call for several users (recsys_session_topk_batch).
    let mut session = Session::new(&ctx, &loaded)?;
    let reqs = [
        Request::new(ds.user_items(0)?, 5).exclude_history(true),
        Request::new(ds.user_items(1)?, 5).exclude_history(true),
    ];
    let top = session.topk_batch(&reqs)?;
    for u in 0..reqs.len() {
        print!("top5 user {}:", u);
        for (i, s) in top.items(u).iter().zip(top.scores(u)) {
            print!(" {}:{:.4}", i, s);
        }
        println!();
    }
    Ok(())
}
