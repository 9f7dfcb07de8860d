package librecsys

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var small = [][2]string{
	{"data.synthetic_users", "300"}, {"data.synthetic_items", "80"}, {"model.max_len", "16"},
	{"model.dim", "16"}, {"model.blocks", "1"}, {"trainer.batch_size", "64"}, {"eval.split", "test"},
}

func setup(t *testing.T) (*Context, *Options, *Dataset, *Model) {
	t.Helper()
	ctx, err := NewContext(2, 7)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := NewOptions(ctx, small...)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := SyntheticDataset(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(ctx, opts, ds)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, opts, ds, m
}

func TestVersion(t *testing.T) {
	if err := CheckVersion(); err != nil {
		t.Fatal(err)
	}
	if Version() == "" {
		t.Fatal("no version")
	}
}

func TestErrors(t *testing.T) {
	ctx, opts, ds, m := setup(t)
	err := opts.Set("model.no_such_key", "1")
	var re *Error
	if !errors.As(err, &re) || re.Code != ENotFound || !strings.Contains(re.Message, "no_such_key") {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(ctx.ErrMsg(), "no_such_key") {
		t.Fatal("ctx message", ctx.ErrMsg())
	}
	if err := opts.Set("model.dim", "16"); err != nil || ctx.ErrMsg() != "" {
		t.Fatal("message not cleared", err, ctx.ErrMsg())
	}
	if _, err := ds.Stat(99); err == nil || err.(*Error).Code != EInvalid || !strings.Contains(err.Error(), "statistic") {
		t.Fatalf("stat: %v", err)
	}
	if _, err := ds.ItemID("nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("item id: %v", err)
	}
	if _, err := m.Get("trainer.lr"); err == nil || err.(*Error).Code != ENotFound {
		t.Fatalf("model get: %v", err)
	}
	if _, err := OpenDataset(ctx, "/no/such/file.txt", opts); err == nil || err.(*Error).Code != EIO {
		t.Fatalf("open: %v", err)
	}
	s, _ := NewSession(ctx, m)
	if _, _, err := s.TopK([]int32{1000}, 3, true); err == nil {
		t.Fatal("bad history accepted")
	}
	s.Close()
	if _, _, err := s.TopK([]int32{1}, 3, true); err == nil || err.(*Error).Code != EState {
		t.Fatalf("closed: %v", err)
	}
}

func TestTrainEvaluateSaveLoadTopK(t *testing.T) {
	ctx, opts, ds, m := setup(t)
	tr, err := NewTrainer(ctx, m, ds, opts)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	tr.SetProgress(func(p Progress) bool { calls++; return p.Step >= 2 })
	if _, err := tr.RunEpoch(); err == nil || err.(*Error).Code != EAborted || calls != 2 {
		t.Fatalf("abort: %v calls %d", err, calls)
	}
	tr.SetProgress(func(p Progress) bool { panic("from the callback") })
	func() {
		defer func() {
			if r := recover(); r != "from the callback" {
				t.Fatalf("recovered %v", r)
			}
		}()
		tr.RunEpoch()
	}()
	tr.SetProgress(nil)
	for i := 0; i < 2; i++ {
		if l, err := tr.RunEpoch(); err != nil || math.IsNaN(l) {
			t.Fatal(l, err)
		}
	}
	tr.Close()
	res, err := Evaluate(ctx, m, ds, opts)
	if err != nil || res["users"] <= 0 {
		t.Fatal(res, err)
	}
	path := filepath.Join(t.TempDir(), "m.ckpt")
	if err := m.Save(ctx, path); err != nil {
		t.Fatal(err)
	}
	again, err := LoadModel(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	hist, _ := ds.UserItems(0)
	s1, _ := NewSession(ctx, m)
	s2, _ := NewSession(ctx, again)
	a, as, _ := s1.TopK(hist, 5, true)
	b, bs, _ := s2.TopK(hist, 5, true)
	for i := range a {
		if a[i] != b[i] || as[i] != bs[i] {
			t.Fatal(a, b)
		}
	}
	scores := make([]float32, s1.NItems()+1)
	if err := s1.Score(hist, scores); err != nil || !math.IsInf(float64(scores[0]), -1) {
		t.Fatal(err, scores[0])
	}
	if err := s1.Score(hist, scores[:3]); err == nil {
		t.Fatal("short buffer accepted")
	}
	ds.WithUserItems(0, func(v []int32) {
		if len(v) != len(hist) || v[0] != hist[0] {
			t.Fatal("view differs")
		}
	})
}

// Objects dropped without Close in any order: the finalizers free them and
// the Go references keep each ctx / dataset alive while it is used.
func TestFinalizersAnyOrder(t *testing.T) {
	for i := 0; i < 20; i++ {
		ctx, opts, ds, m := setup(t)
		tr, _ := NewTrainer(ctx, m, ds, opts)
		s, _ := NewSession(ctx, m)
		switch i % 4 {
		case 0:
			ctx.Close() // explicit Close in the "wrong" order, then the GC
			_ = opts
		case 1:
			ds.Close()
			m.Close()
			tr.Close()
		case 2:
			s.Close()
			ctx.Close()
		}
		ctx, opts, ds, m, tr, s = nil, nil, nil, nil, nil, nil
		runtime.GC()
	}
	// Borrowed objects survive their owner's references being dropped.
	ctx, opts, ds, m := setup(t)
	tr, _ := NewTrainer(ctx, m, SyntheticDatasetMust(t, ctx, opts), opts)
	ds, m = nil, nil
	for i := 0; i < 3; i++ {
		runtime.GC()
		if l, err := tr.RunEpoch(); err != nil || math.IsNaN(l) {
			t.Fatal(l, err)
		}
	}
	_ = ds
	runtime.GC()
	runtime.GC()
}

func SyntheticDatasetMust(t *testing.T, ctx *Context, opts *Options) *Dataset {
	ds, err := SyntheticDataset(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestConcurrentScoring(t *testing.T) {
	_, _, ds, m := setup(t)
	ctx0, _ := NewContext(1, 1)
	s0, _ := NewSession(ctx0, m)
	type res struct {
		items  []int32
		scores []float32
	}
	expect := make([]res, 40)
	for u := range expect {
		h, _ := ds.UserItems(int64(u))
		it, sc, _ := s0.TopK(h, 5, true)
		expect[u] = res{it, sc}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ctx, _ := NewContext(1, uint64(g))
			defer ctx.Close()
			s, _ := NewSession(ctx, m)
			defer s.Close()
			for r := 0; r < 3; r++ {
				for u := range expect {
					h, _ := ds.UserItems(int64(u))
					it, sc, err := s.TopK(h, 5, true)
					_, serr := ds.Stat(1000 + g)
					mu.Lock()
					if err != nil || serr == nil || !strings.Contains(serr.Error(), strconv.Itoa(1000+g)) {
						bad++
					}
					for i := range it {
						if it[i] != expect[u].items[i] || sc[i] != expect[u].scores[i] {
							bad++
						}
					}
					mu.Unlock()
				}
			}
		}(g)
	}
	wg.Wait()
	if bad != 0 {
		t.Fatal("mismatches", bad)
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
