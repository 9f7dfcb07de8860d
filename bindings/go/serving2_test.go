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

func wantCode(t *testing.T, err error, code Status) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code || e.Message == "" {
		t.Fatalf("want %v with a message, got %v", code, err)
	}
}

func TestTensorsAndUserState(t *testing.T) {
	ctx, opts, ds, m := setup(t)
	defer ctx.Close()
	n, _ := m.NItems()
	blank, err := NewBlankModel(ctx, opts, n)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := m.Tensors()
	if err != nil || len(ts) == 0 {
		t.Fatal(err, len(ts))
	}
	for _, ti := range ts {
		v, err := m.GetTensor(ctx, ti.Name)
		if err != nil || int64(len(v)) != ti.Numel {
			t.Fatal(err)
		}
		if err := blank.SetTensor(ctx, ti.Name, v); err != nil {
			t.Fatal(err)
		}
	}
	_, err = m.GetTensor(ctx, "no.such.tensor")
	wantCode(t, err, ENotFound)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "x" + itoa(i+1)
	}
	if err := blank.SetItemIDs(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if id, _ := blank.ItemID("x3"); id != 3 {
		t.Fatal("item id", id)
	}
	h, _ := ds.UserItems(4)
	s1, _ := NewSession(ctx, m)
	s2, _ := NewSession(ctx, blank)
	defer s1.Close()
	defer s2.Close()
	a, _ := s1.ScoreRequest(Request{History: h, K: 5})
	b, _ := s2.ScoreRequest(Request{History: h, K: 5})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("blank model + tensors scores differ")
	}
	wantCode(t, blank.SetTensor(ctx, ts[0].Name, make([]float32, ts[0].Numel)), EInvalid) // held by s2

	u, err := NewUserState(m)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, it := range h {
		if err := u.Append(it, 0); err != nil {
			t.Fatal(err)
		}
	}
	if nb, _ := u.Bytes(); nb <= 0 {
		t.Fatal("bytes")
	}
	r, err := u.Request(5)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s1.ScoreRequest(r)
	if !reflect.DeepEqual(a, c) {
		t.Fatal("user state scores differ from the full request's")
	}
	d, err := s1.ScoreState(u, Request{K: 5})
	if err != nil || !reflect.DeepEqual(a, d) {
		t.Fatal("ScoreState differs from the full request's scores", err)
	}
	i1, s1k, err := s1.TopKState(u, Request{K: 5})
	i2, s2k, _ := s1.TopKRequest(Request{History: h, K: 5})
	if err != nil || !reflect.DeepEqual(i1, i2) || !reflect.DeepEqual(s1k, s2k) {
		t.Fatal("TopKState differs from TopKRequest", err)
	}
	if _, _, err := s1.TopKState(u, Request{History: h, K: 5}); err == nil {
		t.Fatal("a history of its own must be refused")
	}
	wantCode(t, u.Append(n+10, 0), ENotFound)
	u.Clear()
	if r, _ := u.Request(5); len(r.History) != 0 {
		t.Fatal("clear")
	}
}

func params(n int64, seed int) []float32 {
	p := make([]float32, n)
	for i := range p {
		p[i] = float32((i*31+seed*7)%23)*0.001 - 0.011
	}
	return p
}

func TestAdaptersAndStore(t *testing.T) {
	ctx, opts, _, m := setup(t)
	defer ctx.Close()
	a, err := NewAdapter(ctx, m, opts, AdapterUser)
	if err != nil {
		t.Fatal(err)
	}
	kind, rank, np, err := a.Info()
	if err != nil || kind != AdapterUser || rank <= 0 || np <= 0 {
		t.Fatal(err, kind, rank, np)
	}
	p := params(np, 1)
	if err := a.SetParams(p); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Params(); !reflect.DeepEqual(got, p) {
		t.Fatal("params")
	}
	buf, err := a.ToBuffer()
	if err != nil {
		t.Fatal(err)
	}
	b, err := AdapterFromBuffer(ctx, m, buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Params(); !reflect.DeepEqual(got, p) {
		t.Fatal("buffer round trip")
	}
	_, err = AdapterFromBuffer(ctx, m, buf[:len(buf)-3])
	wantCode(t, err, EFormat)
	bad := append([]float32(nil), p...)
	bad[0] = float32(math.NaN())
	err = a.SetParams(bad)
	wantCode(t, err, ENumeric)
	if !strings.Contains(err.Error(), "finite") {
		t.Fatal(err)
	}
	c, _ := NewAdapter(ctx, m, opts, AdapterUser)
	c.SetParams(params(np, 2))
	mg, err := MergeAdapters(ctx, []*Adapter{a, c}, []float32{0.5, 0.5}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, n2, _ := mg.Info(); n2 != np {
		t.Fatal("merge shape")
	}
	f, err := a.Fold()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// a request carrying the adapter scores as the folded model
	sb, err := NewSession(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	sf, err := NewSession(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	hist := []int32{1, 2, 3}
	x, err := sb.ScoreRequest(Request{History: hist, K: 5, Adapter: a})
	if err != nil {
		t.Fatal(err)
	}
	y, err := sf.ScoreRequest(Request{History: hist, K: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(x); i++ {
		if math.Abs(float64(x[i]-y[i])) > 1e-5 {
			t.Fatal("adapter request vs folded model", i, x[i], y[i])
		}
	}

	path := filepath.Join(t.TempDir(), "users.store")
	if err := CreateAdapterStore(ctx, m, opts, path, 3); err != nil {
		t.Fatal(err)
	}
	st, err := OpenAdapterStore(ctx, m, path, true, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Get(1)
	wantCode(t, err, ENotFound)
	if err := st.Put(1, a, true); err != nil {
		t.Fatal(err)
	}
	if err := st.Pin(1, true); err != nil {
		t.Fatal(err)
	}
	g, err := st.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := g.Params(); !reflect.DeepEqual(got, p) {
		t.Fatal("store round trip")
	}
	if s, _ := st.Stats(); s.NUsers != 3 {
		t.Fatal("stats", s)
	}
	st.Close()
	img, _ := os.ReadFile(path)
	ro, err := OpenAdapterStoreBuffer(ctx, m, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if g, err := ro.Get(1); err != nil {
		t.Fatal(err)
	} else if got, _ := g.Params(); !reflect.DeepEqual(got, p) {
		t.Fatal("buffer store")
	}
	// the adapter keeps its model: closing the Model first is fine
	m.Close()
	if _, err := a.Fold(); err != nil {
		t.Fatal(err)
	}
	ctx.Close()
	wantCode(t, func() error { _, _, _, e := a.Info(); return e }(), EState)
}

func TestAdapterTrainAndEvaluate(t *testing.T) {
	ctx, opts, ds, m := setup(t)
	defer ctx.Close()
	opts.Set("adapter.epochs", "1")
	opts.Set("adapter.user_steps", "2")
	shared, err := NewAdapter(ctx, m, opts, AdapterShared)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := shared.Train(ds, -1, opts); err != nil || math.IsNaN(l) {
		t.Fatal(err, l)
	}
	user, _ := NewAdapter(ctx, m, opts, AdapterUser)
	if l, err := user.Train(ds, 0, opts); err != nil || math.IsNaN(l) {
		t.Fatal(err, l)
	}
	if l, err := user.TrainSequence([]int32{1, 2, 3, 2}, nil, opts); err != nil || math.IsNaN(l) {
		t.Fatal(err, l)
	}
	if _, err := user.TrainSequence([]int32{1}, nil, opts); err == nil {
		t.Fatal("want an error")
	}
	n, _ := ds.Stat(StatUsers)
	ranks := make([]float64, int(n))
	if _, err := EvaluateAdapters(ctx, m, shared, nil, ds, opts, ranks); err != nil {
		t.Fatal(err)
	}
	base, _ := Evaluate(ctx, m, ds, opts)
	same, err := EvaluateAdapters(ctx, m, nil, nil, ds, opts, nil)
	if err != nil || same["NDCG@10"] != base["NDCG@10"] {
		t.Fatal(err, same, base)
	}
	if _, err := user.Train(ds, 1<<40, opts); err == nil {
		t.Fatal("want an error")
	}
}
