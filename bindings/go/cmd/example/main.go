// One example, four languages (Go here): train on the embedded synthetic
// data, evaluate, save, reload, recommend the top 5 for users 0 and 1
// in one batch call.
//
//	go run ./cmd/example [checkpoint path]
package main

import (
	"fmt"
	"os"

	recsys "example.invalid/librecsys"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func main() {
	path := "example_model.ckpt"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	must(recsys.CheckVersion())
	ctx, err := recsys.NewContext(2, 42)
	must(err)
	defer ctx.Close()
	opts, err := recsys.NewOptions(ctx,
		[2]string{"data.synthetic_users", "300"}, [2]string{"data.synthetic_items", "80"},
		[2]string{"data.synthetic_length", "25"}, [2]string{"model.max_len", "16"},
		[2]string{"model.dim", "16"}, [2]string{"model.blocks", "1"},
		[2]string{"trainer.batch_size", "64"}, [2]string{"trainer.lr", "0.005"},
		[2]string{"eval.split", "test"})
	must(err)
	defer opts.Close()
	ds, err := recsys.SyntheticDataset(ctx, opts)
	must(err)
	defer ds.Close()
	model, err := recsys.NewModel(ctx, opts, ds)
	must(err)
	defer model.Close()
	trainer, err := recsys.NewTrainer(ctx, model, ds, opts)
	must(err)
	for epoch := 1; epoch <= 3; epoch++ {
		loss, err := trainer.RunEpoch()
		must(err)
		fmt.Printf("epoch %d loss %.6f\n", epoch, loss)
	}
	trainer.Close()
	m, err := recsys.Evaluate(ctx, model, ds, opts)
	must(err)
	fmt.Printf("test HR@10 %.6f NDCG@10 %.6f MRR %.6f users %.0f\n", m["HR@10"], m["NDCG@10"], m["MRR"], m["users"])
	must(model.Save(ctx, path))
	loaded, err := recsys.LoadModel(ctx, path)
	must(err)
	defer loaded.Close()
	m2, err := recsys.Evaluate(ctx, loaded, ds, opts)
	must(err)
	fmt.Printf("reloaded HR@10 %.6f NDCG@10 %.6f\n", m2["HR@10"], m2["NDCG@10"])
	// One batch call for several users (recsys_session_topk_batch).
	session, err := recsys.NewSession(ctx, loaded)
	must(err)
	defer session.Close()
	var reqs []recsys.Request
	for u := int64(0); u < 2; u++ {
		hist, err := ds.UserItems(u)
		must(err)
		reqs = append(reqs, recsys.Request{History: hist, K: 5, ExcludeHistory: true})
	}
	top, err := session.TopKBatch(reqs)
	must(err)
	for u := range reqs {
		items, scores := top.Row(u)
		fmt.Printf("top5 user %d:", u)
		for i := range items {
			fmt.Printf(" %d:%.4f", items[i], scores[i])
		}
		fmt.Println()
	}
}
