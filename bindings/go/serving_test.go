package librecsys

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func servingSetup(t *testing.T) (*Context, *Options, *Dataset, *Model, *Model) {
	t.Helper()
	ctx, err := NewContext(2, 3)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := NewOptions(ctx, [2]string{"model.max_len", "8"}, [2]string{"model.dim", "16"},
		[2]string{"model.blocks", "1"}, [2]string{"trainer.batch_size", "64"})
	if err != nil {
		t.Fatal(err)
	}
	var users, items, times []int64
	for u := int64(0); u < 50; u++ {
		for j := int64(0); j < 10; j++ {
			users, items, times = append(users, u), append(items, 3000+(u*7+j*3)%35), append(times, j*60)
		}
	}
	ds, err := DatasetFromArrays(ctx, users, items, times, opts)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(ctx, opts, ds)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(ctx, m, ds, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.RunEpoch(); err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(t.TempDir(), "t.ckpt")
	if err := tr.SaveCheckpoint(ck); err != nil {
		t.Fatal(err)
	}
	if err := tr.Resume(ck); err != nil || tr.Epoch() != 1 {
		t.Fatal(err, tr.Epoch())
	}
	_ = tr.EvalDue()
	tr.Close()
	path := filepath.Join(t.TempDir(), "m.ckpt")
	if err := m.Save(ctx, path); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadModel(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, opts, ds, m, loaded
}

func code(err error) Status {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return OK
}

func TestServingAPI(t *testing.T) {
	ctx, _, ds, m, loaded := servingSetup(t)
	a, _ := m.Info()
	b, err := loaded.Info()
	if err != nil || a != b {
		t.Fatal(err, a, b)
	}
	if b.Type != ModelSASRec || b.Dim != 16 || b.MaxLen != 8 || !b.HasItemIDs || !b.DataHasTime || b.NUsers != 50 {
		t.Fatalf("%+v", b)
	}
	if np, _ := loaded.NParams(); np != b.NParams {
		t.Fatal(np)
	}
	m.Close()
	id, err := loaded.ItemID("3005")
	dsid, _ := ds.ItemID("3005")
	name, _ := loaded.ItemName(id)
	if err != nil || id != dsid || name != "3005" {
		t.Fatal(err, id, dsid, name)
	}
	if _, err := loaded.ItemID("nope"); code(err) != ENotFound {
		t.Fatal(err)
	}

	s, err := NewSession(ctx, loaded)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := ds.UserItems(3)
	ht, _ := ds.UserTimes(3)
	req := Request{History: h, Times: ht, K: 5}
	u, err := s.UserVector(req)
	if err != nil {
		t.Fatal(err)
	}
	full, err := s.ScoreRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	vecs, _ := loaded.ItemVectors()
	tab, _ := loaded.ItemTable()
	if tab.Rows != int(b.NItems)+1 || tab.Dim != 16 || vecs.Rows != tab.Rows {
		t.Fatal(tab.Rows, tab.Dim)
	}
	for i := 1; i < vecs.Rows; i++ {
		var dot float32
		for j, x := range vecs.Row(i) {
			dot += x * u[j]
		}
		if math.Abs(float64(dot-full[i])) > 1e-3 {
			t.Fatalf("item %d: %v vs %v", i, dot, full[i])
		}
	}
	err = loaded.WithItemTable(func(x Matrix) {
		if !reflect.DeepEqual(x.Data, tab.Data) {
			t.Error("view differs from copy")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := s.ScoreRequest(Request{History: h})
	direct := make([]float32, s.NItems()+1)
	if err := s.Score(h, direct); err != nil || !reflect.DeepEqual(plain, direct) {
		t.Fatal(err)
	}

	mask := make([]uint8, tab.Rows)
	mask[4] = 1
	sx, err := s.ScoreRequest(Request{History: h, Exclude: []int32{1, 2}, ExcludeMask: mask, ExcludeHistory: true})
	if err != nil || !math.IsInf(float64(sx[1]), -1) || !math.IsInf(float64(sx[2]), -1) || !math.IsInf(float64(sx[4]), -1) {
		t.Fatal(err)
	}
	for _, i := range h {
		if !math.IsInf(float64(sx[i]), -1) {
			t.Fatal("history item not excluded", i)
		}
	}
	if _, err := s.ScoreRequest(Request{History: h, ExcludeMask: []uint8{0}}); code(err) != EInvalid {
		t.Fatal(err)
	}
	cands := []int32{6, 3, 9}
	req.Candidates = cands
	cs, err := s.ScoreRequest(req)
	if err != nil || !reflect.DeepEqual(cs, []float32{full[6], full[3], full[9]}) {
		t.Fatal(err, cs)
	}
	req.Exclude = []int32{3}
	ti, _, err := s.TopKRequest(req)
	if err != nil || len(ti) != 2 || ti[0] == 3 || ti[1] == 3 {
		t.Fatal(err, ti)
	}
	if _, _, err := s.TopKRequest(Request{History: []int32{9999}, K: 5}); code(err) != ENotFound {
		t.Fatal(err)
	}

	// batch == single
	var reqs []Request
	for u := int64(0); u < 10; u++ {
		hu, _ := ds.UserItems(u)
		tu, _ := ds.UserTimes(u)
		reqs = append(reqs, Request{History: hu, Times: tu, K: 6, ExcludeHistory: true})
	}
	reqs[4].K = 3
	batch, err := s.TopKBatch(reqs)
	if err != nil || batch.Stride != 6 || batch.Counts[4] != 3 {
		t.Fatal(err)
	}
	for r, q := range reqs {
		i1, s1, err := s.TopKRequest(q)
		bi, bs := batch.Row(r)
		if err != nil || !reflect.DeepEqual(i1, bi) || !reflect.DeepEqual(s1, bs) {
			t.Fatal(r, err, i1, bi)
		}
	}
	h0, _ := ds.UserItems(0)
	ti0, ts0, _ := s.TopK(h0, 6, true)
	bi0, bs0 := batch.Row(0)
	if !reflect.DeepEqual(ti0, bi0) || !reflect.DeepEqual(ts0, bs0) {
		t.Fatal("TopK differs from batch")
	}
	if e, err := s.TopKBatch(nil); err != nil || len(e.Counts) != 0 {
		t.Fatal(err)
	}

	// pools
	pool, err := NewThreadPool(2)
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := NewSharedContext(pool, 1)
	pb, _ := NewSharedContext(pool, 1)
	pool.Close()
	if err := pa.SetThreads(3); code(err) != EState {
		t.Fatal(err)
	}
	one, err := NewContextMaxThreads(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	top := func(c *Context) []int32 {
		ss, err := NewSession(c, loaded)
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		it, _, err := ss.TopK(h, 5, true)
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	want := top(one)
	if !reflect.DeepEqual(top(pa), want) || !reflect.DeepEqual(top(pb), want) {
		t.Fatal("shared pool results differ")
	}
	if _, err := NewThreadPool(0); err == nil {
		t.Fatal("pool of 0 threads")
	}
	if _, err := NewContextMaxThreads(0, 1); err == nil {
		t.Fatal("ctx of 0 threads")
	}
	pa.Close()
	pb.Close()
	one.Close()
}

func TestLoadersOptionsAnalysis(t *testing.T) {
	dir := t.TempDir()
	ctx, err := NewContext(1, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	var lines []string
	for u := 0; u < 20; u++ {
		for j := 0; j < 6; j++ {
			lines = append(lines, "u"+itoa(u)+"\t"+itoa(100+(u+j*3)%15)+"\t"+itoa(j))
		}
	}
	os.WriteFile(filepath.Join(dir, "ev.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	opts, _ := NewOptions(ctx)
	ev, err := LoadDataset(ctx, filepath.Join(dir, "ev.txt"), opts)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := ev.UserID("u4")
	un, _ := ev.UserName(uid)
	iid, _ := ev.ItemID("105")
	in, _ := ev.ItemName(iid)
	if un != "u4" || in != "105" {
		t.Fatal(un, in)
	}
	var seq, tim []string
	for u := 0; u < 15; u++ {
		seq = append(seq, itoa(u)+" 1 2 3 4 5")
		tim = append(tim, itoa(u)+" 10 20 30 40 50")
	}
	os.WriteFile(filepath.Join(dir, "s.txt"), []byte(strings.Join(seq, "\n")+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "t.txt"), []byte(strings.Join(tim, "\n")+"\n"), 0o644)
	sq, err := LoadSequences(ctx, filepath.Join(dir, "s.txt"), filepath.Join(dir, "t.txt"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tt, _ := sq.UserTimes(0); len(tt) != 5 {
		t.Fatal(tt)
	}
	sq2, _ := LoadSequences(ctx, filepath.Join(dir, "s.txt"), "", nil)
	if tt, _ := sq2.UserTimes(0); tt != nil {
		t.Fatal(tt)
	}
	if _, err := LoadDataset(ctx, "/no/such.txt", nil); code(err) != EIO {
		t.Fatal(err)
	}

	os.WriteFile(filepath.Join(dir, "ok.yaml"), []byte("model:\n  dim: 24\n"), 0o644)
	if err := opts.LoadYAML(filepath.Join(dir, "ok.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := opts.LoadYAMLString("trainer:\n  lr: 0.01\n", "inline"); err != nil {
		t.Fatal(err)
	}
	if err := opts.SetInt("model.blocks", 2); err != nil {
		t.Fatal(err)
	}
	if err := opts.SetFloat("model.dropout", 0.25); err != nil {
		t.Fatal(err)
	}
	d, _ := opts.GetInt("model.dim")
	lr, _ := opts.GetFloat("trainer.lr")
	bl, _ := opts.GetInt("model.blocks")
	dr, _ := opts.GetFloat("model.dropout")
	if d != 24 || lr != 0.01 || bl != 2 || dr != 0.25 {
		t.Fatal(d, lr, bl, dr)
	}
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("model:\n  dim: [oops\n"), 0o644)
	if err := opts.LoadYAML(filepath.Join(dir, "bad.yaml")); code(err) != EParse {
		t.Fatal(err)
	}
	if f, line, _, ok := ctx.ErrorLocation(); !ok || !strings.HasSuffix(f, "bad.yaml") || line < 1 {
		t.Fatal(f, line, ok)
	}
	var vn int
	for _, part := range strings.Split(Version(), ".") {
		n := 0
		for _, c := range part {
			n = n*10 + int(c-'0')
		}
		vn = vn*100 + n
	}
	if VersionNumber() != vn {
		t.Fatal(VersionNumber(), Version())
	}

	desc, err := DescribeOptions()
	if err != nil || len(desc) != len(opts.Keys()) {
		t.Fatal(err, len(desc))
	}
	sawDim := false
	for _, o := range desc {
		if o.Key == "model.dim" {
			sawDim = o.Type == OptInt && o.Max >= 64 && o.Doc != ""
		}
		if o.Type == OptEnum {
			found := false
			for _, c := range o.Choices {
				found = found || c == o.Default
			}
			if !found {
				t.Errorf("%+v", o)
			}
		} else if o.Choices != nil {
			t.Errorf("%+v", o)
		}
	}
	if !sawDim {
		t.Fatal("model.dim not described")
	}

	// ctx settings and logging
	var logged []string
	if err := ctx.SetLog(func(level int, msg string) { logged = append(logged, msg) }); err != nil {
		t.Fatal(err)
	}
	if err := ctx.SetMaxISA("scalar"); err != nil || ctx.ISA() != "scalar" || ctx.KernelName(0) == "" {
		t.Fatal(err, ctx.ISA())
	}
	if len(logged) == 0 || ctx.Threads() < 1 {
		t.Fatal("no log lines")
	}
	ctx.SetLog(nil)
	if err := ctx.SetGemmBackend("native"); err != nil {
		t.Fatal(err)
	}
	if err := ctx.SetGemmBackend("nope"); code(err) != EInvalid {
		t.Fatal(err)
	}
	if err := ctx.SetBF16(false); err != nil {
		t.Fatal(err)
	}
	pop, err := EvaluatePopularity(ctx, ev, nil)
	if err != nil || pop["users"] <= 0 {
		t.Fatal(err, pop)
	}

	ap, err := NewApEn(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	mean, per, used, err := ap.Dataset(ev)
	if err != nil || len(per) != 20 || used <= 0 || mean < 0 {
		t.Fatal(err, len(per), used, mean)
	}
	if v, err := ap.Sequence([]int32{1, 2, 1, 2, 1, 2, 1}); err != nil || v < 0 {
		t.Fatal(err)
	}
	if v, err := ap.Numeric([]float64{1, 2, 1, 2, 1, 2, 1}); err != nil || v < 0 {
		t.Fatal(err)
	}
	pl, err := NewPerfLaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	for _, l := range []float64{1, 2, 4} {
		for _, hd := range []float64{16, 32, 64} {
			for _, dd := range []float64{1, 4} {
				pl.Add(l, hd, dd, 0.1+0.02*math.Log(l)+0.01*math.Log(hd)+0.03*math.Log(dd))
			}
		}
	}
	if err := pl.Fit(); err != nil {
		if code(err) != ENumeric {
			t.Fatal(err)
		}
		return
	}
	if _, _, _, err := pl.Params(); err != nil {
		t.Fatal(err)
	}
	l, h, m, err := pl.BestSize(4, []float64{1, 2, 4}, []float64{16, 64})
	p, _ := pl.Predict(l, h, 4)
	if err != nil || p != m {
		t.Fatal(err, p, m)
	}
	if st, msg := LastError(); st != OK && msg == "" {
		t.Fatal(st)
	}
}
