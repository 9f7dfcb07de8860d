package librecsys

// The rest of the C API: context settings and logging, shared pools,
// option description and typed access, loaders, model info and item ids,
// the request/batch serving calls, training checkpoints, ApEn and the
// Performance Law fitter.

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <librecsys/recsys.h>
recsys_status recsys_go_set_log(recsys_ctx *c, uintptr_t handle);
*/
import "C"

import (
	"math"
	"runtime"
	"runtime/cgo"
	"strings"
	"unsafe"
)

// VersionNumber is the loaded library's MAJOR*10000 + MINOR*100 + PATCH.
func VersionNumber() int { return int(C.recsys_version_number()) }

// LastError is the status and message of the last failing call made on the
// current OS thread. Calls in this package return that as their error
// already; use this after calling the C API yourself with the goroutine
// locked to its thread.
func LastError() (Status, string) {
	return Status(C.recsys_last_error()), C.GoString(C.recsys_last_errmsg())
}

// ---------------------------------------------------------------- Contexts

// ThreadPool is a worker pool shared by several contexts (NewSharedContext).
// Contexts keep it alive: Close may come before theirs.
type ThreadPool struct{ p *C.recsys_threadpool }

func NewThreadPool(nThreads int) (*ThreadPool, error) {
	var p *C.recsys_threadpool
	if err := call(nil, func() C.recsys_status { return C.recsys_threadpool_new(C.int(nThreads), &p) }); err != nil {
		return nil, err
	}
	tp := &ThreadPool{p}
	runtime.SetFinalizer(tp, (*ThreadPool).Close)
	return tp, nil
}

func (tp *ThreadPool) Close() {
	if tp.p != nil {
		C.recsys_threadpool_free(tp.p)
		tp.p = nil
	}
}

func newContext(p *C.recsys_ctx, seed uint64) (*Context, error) {
	c := &Context{p: p}
	runtime.SetFinalizer(c, (*Context).Close)
	if err := c.SetSeed(seed); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// NewContextMaxThreads makes a context whose pool never has more than
// nThreads threads (the calling thread counts as one).
func NewContextMaxThreads(nThreads int, seed uint64) (*Context, error) {
	var p *C.recsys_ctx
	if err := call(nil, func() C.recsys_status { return C.recsys_ctx_new_with_threads(C.int(nThreads), &p) }); err != nil {
		return nil, err
	}
	return newContext(p, seed)
}

// NewSharedContext makes a context running on a shared pool (SetThreads on it gives EState).
func NewSharedContext(pool *ThreadPool, seed uint64) (*Context, error) {
	if pool == nil || pool.p == nil {
		return nil, errClosed("ThreadPool")
	}
	defer runtime.KeepAlive(pool)
	var p *C.recsys_ctx
	if err := call(nil, func() C.recsys_status { return C.recsys_ctx_new_shared(pool.p, &p) }); err != nil {
		return nil, err
	}
	return newContext(p, seed)
}

// Threads is the number of worker threads used inside calls.
func (c *Context) Threads() int {
	defer runtime.KeepAlive(c)
	return int(C.recsys_ctx_threads(c.p))
}

// SetMaxISA caps the kernels' instruction set: "scalar", "avx2", "avx512" or "best".
func (c *Context) SetMaxISA(isa string) error {
	s := C.CString(isa)
	defer C.free(unsafe.Pointer(s))
	return c.do(func(p *C.recsys_ctx) C.recsys_status { return C.recsys_ctx_set_max_isa(p, s) })
}

// KernelName is the variant chosen for a kernel id ("" if unknown).
func (c *Context) KernelName(kernel int) string {
	defer runtime.KeepAlive(c)
	n := C.recsys_ctx_kernel_name(c.p, C.int(kernel))
	if n == nil {
		return ""
	}
	return C.GoString(n)
}

// SetGemmBackend selects "native" or "onednn".
func (c *Context) SetGemmBackend(backend string) error {
	s := C.CString(backend)
	defer C.free(unsafe.Pointer(s))
	return c.do(func(p *C.recsys_ctx) C.recsys_status { return C.recsys_ctx_set_gemm_backend(p, s) })
}

// SetBF16 turns the bf16 GEMM mode on or off (EUnsupported without the CPU feature).
func (c *Context) SetBF16(on bool) error {
	v := C.int(0)
	if on {
		v = 1
	}
	return c.do(func(p *C.recsys_ctx) C.recsys_status { return C.recsys_ctx_set_bf16(p, v) })
}

type logCb struct{ fn func(level int, msg string) }

//export goLog
func goLog(user C.uintptr_t, level C.int, msg *C.char) {
	defer func() { _ = recover() }() // never unwind into C
	cgo.Handle(user).Value().(*logCb).fn(int(level), C.GoString(msg))
}

// SetLog routes the library's log lines to fn(level, message), called on
// the goroutine making the call; nil drops them. Panics in fn are dropped.
func (c *Context) SetLog(fn func(level int, msg string)) error {
	var h cgo.Handle
	if fn != nil {
		h = cgo.NewHandle(&logCb{fn})
	}
	err := c.do(func(p *C.recsys_ctx) C.recsys_status { return C.recsys_go_set_log(p, C.uintptr_t(h)) })
	if err != nil {
		if h != 0 {
			h.Delete()
		}
		return err
	}
	if c.log != 0 {
		c.log.Delete()
	}
	c.log = h
	return nil
}

// ErrorLocation is the file, line and column of the last error when it was in an input file.
func (c *Context) ErrorLocation() (file string, line, column int, ok bool) {
	if c == nil || c.p == nil {
		return "", 0, 0, false
	}
	defer runtime.KeepAlive(c)
	var f *C.char
	var l, col C.int
	if C.recsys_ctx_error_location(c.p, &f, &l, &col) != C.RECSYS_OK {
		return "", 0, 0, false
	}
	return C.GoString(f), int(l), int(col), true
}

// ----------------------------------------------------------------- Options

// Option types (OptionInfo.Type).
const (
	OptString  = int(C.RECSYS_OPT_STRING)
	OptInt     = int(C.RECSYS_OPT_INT)
	OptFloat   = int(C.RECSYS_OPT_FLOAT)
	OptEnum    = int(C.RECSYS_OPT_ENUM)
	OptBool    = int(C.RECSYS_OPT_BOOL)
	OptIntList = int(C.RECSYS_OPT_INT_LIST)
)

// OptionInfo describes one option key (recsys_opts_describe).
type OptionInfo struct {
	Key      string
	Type     int    // OptString, OptInt, ...
	TypeName string // "string", "int", "float", "enum", "bool", "int list"
	Default  string
	Choices  []string // enum: the allowed words
	Min, Max float64  // int, float, int list: inclusive bounds
	Allowed  string   // a phrase on allowed values, or ""
	Doc      string
}

// DescribeOptions lists every option key with type, default, bounds or choices and doc.
func DescribeOptions() ([]OptionInfo, error) {
	n := int(C.recsys_opts_count(nil))
	out := make([]OptionInfo, 0, n)
	for i := 0; i < n; i++ {
		var c C.recsys_opt_info
		c.struct_size = C.int(unsafe.Sizeof(c))
		if err := call(nil, func() C.recsys_status { return C.recsys_opts_describe(C.int(i), &c) }); err != nil {
			return nil, err
		}
		o := OptionInfo{Key: C.GoString(c.key), Type: int(c._type), TypeName: C.GoString(c.type_name),
			Default: C.GoString(c.default_value), Min: float64(c.min), Max: float64(c.max),
			Doc: C.GoString(c.doc)}
		if c.choices != nil {
			o.Choices = strings.Split(C.GoString(c.choices), "|")
		}
		if c.allowed != nil {
			o.Allowed = C.GoString(c.allowed)
		}
		out = append(out, o)
	}
	return out, nil
}

// Describe is DescribeOptions (the keys are the same for every Options).
func (o *Options) Describe() ([]OptionInfo, error) { return DescribeOptions() }

func (o *Options) do(f func() C.recsys_status) error {
	if o == nil || o.p == nil {
		return errClosed("Options")
	}
	if o.ctx.p == nil {
		return errClosed("Context of these Options")
	}
	defer runtime.KeepAlive(o)
	return call(o.ctx.p, f)
}

func (o *Options) SetInt(key string, v int64) error {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	return o.do(func() C.recsys_status { return C.recsys_opts_set_int(o.p, k, C.int64_t(v)) })
}

func (o *Options) SetFloat(key string, v float64) error {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	return o.do(func() C.recsys_status { return C.recsys_opts_set_float(o.p, k, C.double(v)) })
}

func (o *Options) GetInt(key string) (int64, error) {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	var v C.int64_t
	err := o.do(func() C.recsys_status { return C.recsys_opts_get_int(o.p, k, &v) })
	return int64(v), err
}

func (o *Options) GetFloat(key string) (float64, error) {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	var v C.double
	err := o.do(func() C.recsys_status { return C.recsys_opts_get_float(o.p, k, &v) })
	return float64(v), err
}

// LoadYAML loads a YAML config file (errors carry file:line:column; see Context.ErrorLocation).
func (o *Options) LoadYAML(path string) error {
	s := C.CString(path)
	defer C.free(unsafe.Pointer(s))
	return o.do(func() C.recsys_status { return C.recsys_opts_load_yaml(o.p, s) })
}

// LoadYAMLString loads YAML text; name is used in messages.
func (o *Options) LoadYAMLString(yaml, name string) error {
	y, n := C.CString(yaml), C.CString(name)
	defer C.free(unsafe.Pointer(y))
	defer C.free(unsafe.Pointer(n))
	return o.do(func() C.recsys_status { return C.recsys_opts_load_yaml_string(o.p, y, C.size_t(len(yaml)), n) })
}

// ---------------------------------------------------------------- Datasets

func makeDataset(ctx *Context, opts *Options, f func(*C.recsys_ctx, **C.recsys_dataset) C.recsys_status) (*Dataset, error) {
	defer runtime.KeepAlive(opts)
	var p *C.recsys_dataset
	if err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return f(c, &p) }); err != nil {
		return nil, err
	}
	return newDataset(p), nil
}

// LoadDataset reads an interaction file (`user item [timestamp] [rating]` lines, .gz too).
func LoadDataset(ctx *Context, path string, opts *Options) (*Dataset, error) {
	s := C.CString(path)
	defer C.free(unsafe.Pointer(s))
	return makeDataset(ctx, opts, func(c *C.recsys_ctx, p **C.recsys_dataset) C.recsys_status {
		return C.recsys_dataset_load(c, s, opts.ptr(), p)
	})
}

// LoadSequences reads a sequence file (`user i1 i2 ...`) and, when timesPath is not "", its timestamps.
func LoadSequences(ctx *Context, path, timesPath string, opts *Options) (*Dataset, error) {
	s := C.CString(path)
	defer C.free(unsafe.Pointer(s))
	var t *C.char
	if timesPath != "" {
		t = C.CString(timesPath)
		defer C.free(unsafe.Pointer(t))
	}
	return makeDataset(ctx, opts, func(c *C.recsys_ctx, p **C.recsys_dataset) C.recsys_status {
		return C.recsys_dataset_load_sequences(c, s, t, opts.ptr(), p)
	})
}

func i64ptr(v []int64) *C.int64_t {
	if len(v) == 0 {
		return nil
	}
	return (*C.int64_t)(unsafe.Pointer(&v[0]))
}

// DatasetFromArrays builds a dataset from n events with external ids (times may be nil).
func DatasetFromArrays(ctx *Context, users, items, times []int64, opts *Options) (*Dataset, error) {
	if len(users) != len(items) || (times != nil && len(times) != len(users)) {
		return nil, &Error{Code: EInvalid, Message: "users, items and times must have one length"}
	}
	defer runtime.KeepAlive(users)
	defer runtime.KeepAlive(items)
	defer runtime.KeepAlive(times)
	return makeDataset(ctx, opts, func(c *C.recsys_ctx, p **C.recsys_dataset) C.recsys_status {
		return C.recsys_dataset_from_arrays(c, C.size_t(len(users)), i64ptr(users), i64ptr(items), i64ptr(times), opts.ptr(), p)
	})
}

func (d *Dataset) name(f func(**C.char) C.recsys_status) (string, error) {
	if d.p == nil {
		return "", errClosed("Dataset")
	}
	defer runtime.KeepAlive(d)
	var v *C.char
	if err := call(nil, func() C.recsys_status { return f(&v) }); err != nil {
		return "", err
	}
	return C.GoString(v), nil
}

func (d *Dataset) UserName(user int64) (string, error) {
	return d.name(func(v **C.char) C.recsys_status { return C.recsys_dataset_user_name(d.p, C.int64_t(user), v) })
}

func (d *Dataset) ItemName(item int32) (string, error) {
	return d.name(func(v **C.char) C.recsys_status { return C.recsys_dataset_item_name(d.p, C.int32_t(item), v) })
}

func (d *Dataset) UserID(name string) (int64, error) {
	if d.p == nil {
		return 0, errClosed("Dataset")
	}
	s := C.CString(name)
	defer C.free(unsafe.Pointer(s))
	defer runtime.KeepAlive(d)
	var v C.int64_t
	err := call(nil, func() C.recsys_status { return C.recsys_dataset_user_id(d.p, s, &v) })
	return int64(v), err
}

// UserTimes copies the user's timestamps (nil when the data has none).
func (d *Dataset) UserTimes(user int64) ([]int64, error) {
	if d.p == nil {
		return nil, errClosed("Dataset")
	}
	defer runtime.KeepAlive(d)
	var items *C.int32_t
	var times *C.int64_t
	var n C.size_t
	if err := call(nil, func() C.recsys_status {
		return C.recsys_dataset_user_items(d.p, C.int64_t(user), &items, &times, &n)
	}); err != nil {
		return nil, err
	}
	if times == nil {
		return nil, nil
	}
	out := make([]int64, int(n))
	if n > 0 {
		copy(out, unsafe.Slice((*int64)(unsafe.Pointer(times)), int(n)))
	}
	return out, nil
}

// ------------------------------------------------------------------ Models

// Model families (ModelInfo.Type).
const (
	ModelSASRec = int(C.RECSYS_MODEL_SASREC)
	ModelHSTU   = int(C.RECSYS_MODEL_HSTU)
)

// ModelInfo is what a model says about itself (recsys_model_info).
type ModelInfo struct {
	Type             int // ModelSASRec or ModelHSTU
	NItems           int32
	MaxLen, Dim      int
	Blocks, Heads    int
	TimeBias, L2Norm bool
	HasItemIDs       bool
	DataHasTime      bool
	NParams          int64
	NUsers           int64 // -1 when unknown
	DataFingerprint  uint64
	// PositionsFromStart: model.positions = start (user states cache keys and values)
	PositionsFromStart bool
}

func (m *Model) ok() error {
	if m == nil || m.p == nil {
		return errClosed("Model")
	}
	return nil
}

func (m *Model) NParams() (int64, error) {
	if err := m.ok(); err != nil {
		return 0, err
	}
	defer runtime.KeepAlive(m)
	var n C.int64_t
	err := call(nil, func() C.recsys_status { return C.recsys_model_n_params(m.p, &n) })
	return int64(n), err
}

// Info describes the model (recsys_model_info_get).
func (m *Model) Info() (ModelInfo, error) {
	if err := m.ok(); err != nil {
		return ModelInfo{}, err
	}
	defer runtime.KeepAlive(m)
	var c C.recsys_model_info
	c.struct_size = C.size_t(unsafe.Sizeof(c))
	if err := call(nil, func() C.recsys_status { return C.recsys_model_info_get(m.p, &c) }); err != nil {
		return ModelInfo{}, err
	}
	return ModelInfo{Type: int(c._type), NItems: int32(c.n_items), MaxLen: int(c.max_len), Dim: int(c.dim),
		Blocks: int(c.blocks), Heads: int(c.heads), TimeBias: c.time_bias != 0, L2Norm: c.l2norm != 0,
		HasItemIDs: c.has_item_ids != 0, DataHasTime: c.data_has_time != 0, NParams: int64(c.n_params),
		NUsers: int64(c.n_users), DataFingerprint: uint64(c.data_fingerprint),
		PositionsFromStart: c.positions_from_start != 0}, nil
}

// ItemID is the dense id of an external item id, without the dataset.
func (m *Model) ItemID(externalID string) (int32, error) {
	if err := m.ok(); err != nil {
		return 0, err
	}
	s := C.CString(externalID)
	defer C.free(unsafe.Pointer(s))
	defer runtime.KeepAlive(m)
	var v C.int32_t
	err := call(nil, func() C.recsys_status { return C.recsys_model_item_id(m.p, s, &v) })
	return int32(v), err
}

// ItemName is the external id of a dense item id.
func (m *Model) ItemName(item int32) (string, error) {
	if err := m.ok(); err != nil {
		return "", err
	}
	defer runtime.KeepAlive(m)
	var v *C.char
	if err := call(nil, func() C.recsys_status { return C.recsys_model_item_name(m.p, C.int32_t(item), &v) }); err != nil {
		return "", err
	}
	return C.GoString(v), nil
}

// Matrix is a rows x Dim row-major float matrix.
type Matrix struct {
	Data      []float32
	Rows, Dim int
}

// Row i of the matrix (a sub-slice).
func (x Matrix) Row(i int) []float32 { return x.Data[i*x.Dim : (i+1)*x.Dim] }

func (m *Model) withMatrix(vectors bool, fn func(Matrix)) error {
	if err := m.ok(); err != nil {
		return err
	}
	defer runtime.KeepAlive(m)
	var p *C.float
	var rows C.int32_t
	var dim C.int
	err := call(nil, func() C.recsys_status {
		if vectors {
			return C.recsys_model_item_vectors(m.p, &p, &rows, &dim)
		}
		return C.recsys_model_item_table(m.p, &p, &rows, &dim)
	})
	if err != nil {
		return err
	}
	x := Matrix{Rows: int(rows), Dim: int(dim)}
	if n := x.Rows * x.Dim; n > 0 {
		x.Data = unsafe.Slice((*float32)(unsafe.Pointer(p)), n)
	}
	fn(x)
	return nil
}

// WithItemTable lends fn the item embedding table in place (n_items+1 rows,
// row 0 padding; no copy); the slice is valid only during fn, which keeps
// the model alive. ItemTable returns a copy.
func (m *Model) WithItemTable(fn func(Matrix)) error { return m.withMatrix(false, fn) }

// WithItemVectors lends fn the vectors scores are dot products with
// (normalised for l2norm models), in place, valid only during fn.
func (m *Model) WithItemVectors(fn func(Matrix)) error { return m.withMatrix(true, fn) }

func copyMatrix(x Matrix) Matrix {
	return Matrix{Data: append([]float32(nil), x.Data...), Rows: x.Rows, Dim: x.Dim}
}

// ItemTable copies the item embedding table (Go cannot keep the model alive
// through a slice of C memory; see WithItemTable).
func (m *Model) ItemTable() (Matrix, error) {
	var out Matrix
	err := m.WithItemTable(func(x Matrix) { out = copyMatrix(x) })
	return out, err
}

// ItemVectors copies the scoring vectors (see WithItemVectors).
func (m *Model) ItemVectors() (Matrix, error) {
	var out Matrix
	err := m.WithItemVectors(func(x Matrix) { out = copyMatrix(x) })
	return out, err
}

// --------------------------------------------------------------- Training

func (t *Trainer) do(f func() C.recsys_status) error {
	if t.p == nil || t.ctx.p == nil {
		return errClosed("Trainer or its Context")
	}
	defer runtime.KeepAlive(t)
	return call(t.ctx.p, f)
}

// Epoch is the number of epochs completed.
func (t *Trainer) Epoch() int {
	defer runtime.KeepAlive(t)
	return int(C.recsys_trainer_epoch(t.p))
}

// EvalDue reports whether trainer.eval_every says to evaluate now.
func (t *Trainer) EvalDue() bool {
	defer runtime.KeepAlive(t)
	return C.recsys_trainer_eval_due(t.p) != 0
}

// SaveCheckpoint saves model, optimiser state, epoch and RNG atomically.
func (t *Trainer) SaveCheckpoint(path string) error {
	s := C.CString(path)
	defer C.free(unsafe.Pointer(s))
	return t.do(func() C.recsys_status { return C.recsys_trainer_save_checkpoint(t.p, s) })
}

// Resume continues from a training checkpoint.
func (t *Trainer) Resume(path string) error {
	s := C.CString(path)
	defer C.free(unsafe.Pointer(s))
	return t.do(func() C.recsys_status { return C.recsys_trainer_resume(t.p, s) })
}

// EvaluatePopularity is the popularity baseline under the same protocol.
func EvaluatePopularity(ctx *Context, ds *Dataset, opts *Options) (map[string]float64, error) {
	defer runtime.KeepAlive(ds)
	defer runtime.KeepAlive(opts)
	var m *C.recsys_metrics
	err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_evaluate_popularity(c, ds.p, opts.ptr(), &m) })
	if err != nil {
		return nil, err
	}
	return takeMetrics(m), nil
}

// ---------------------------------------------------------------- Serving

// Request is one scoring request (recsys_request).
type Request struct {
	History        []int32 // dense ids, oldest first
	Times          []int64 // nil, or one per history item
	K              int     // top-k size
	ExcludeHistory bool
	Exclude        []int32  // more items never to recommend
	ExcludeMask    []uint8  // nil, or n_items+1 bytes (non-zero = excluded)
	Candidates     []int32  // nil: the whole catalogue; else rank only these
	Adapter        *Adapter // nil: the base model; else an adapter of the session's model
}

// cRequests copies requests into one C allocation (cgo forbids C memory
// that holds Go pointers): the structs, their pointer array and every slice.
type cRequests struct {
	base unsafe.Pointer
	ptrs **C.recsys_request
	one  *C.recsys_request
}

func (s *Session) toC(reqs []Request) (*cRequests, error) {
	const al = 8
	rsz := (C.sizeof_recsys_request + al - 1) / al * al
	round := func(n int) int { return (n + al - 1) / al * al }
	size := len(reqs)*(rsz+al) + al
	for i, r := range reqs {
		if r.Times != nil && len(r.Times) != len(r.History) {
			return nil, &Error{Code: EInvalid, Message: "request " + itoa(i) + ": times must have one entry per history item"}
		}
		if r.ExcludeMask != nil && len(r.ExcludeMask) != int(s.nItems)+1 {
			return nil, &Error{Code: EInvalid, Message: "request " + itoa(i) + ": exclude_mask must have n_items+1 entries"}
		}
		if r.K < 0 || r.K > math.MaxInt32 {
			return nil, &Error{Code: EInvalid, Message: "request " + itoa(i) + ": bad k"}
		}
		if r.Adapter != nil && r.Adapter.p == nil {
			return nil, &Error{Code: EState, Message: "request " + itoa(i) + ": the Adapter is closed"}
		}
		size += round(4*len(r.History)) + round(8*len(r.Times)) + round(4*len(r.Exclude)) +
			round(len(r.ExcludeMask)) + round(4*len(r.Candidates))
	}
	base := C.calloc(C.size_t(size), 1)
	if base == nil {
		return nil, &Error{Code: ENoMem, Message: "out of memory"}
	}
	off := 0
	take := func(n int) unsafe.Pointer {
		p := unsafe.Add(base, off)
		off += round(n)
		return p
	}
	ptrs := take(len(reqs) * int(unsafe.Sizeof(uintptr(0))))
	ptrSlice := unsafe.Slice((**C.recsys_request)(ptrs), len(reqs)+1)
	for i, r := range reqs {
		c := (*C.recsys_request)(take(rsz))
		ptrSlice[i] = c
		c.struct_size = C.sizeof_recsys_request
		if len(r.History) > 0 {
			p := take(4 * len(r.History))
			copy(unsafe.Slice((*int32)(p), len(r.History)), r.History)
			c.history = (*C.int32_t)(p)
		}
		c.n_history = C.size_t(len(r.History))
		if r.Times != nil {
			p := take(8 * len(r.Times))
			copy(unsafe.Slice((*int64)(p), len(r.Times)), r.Times)
			c.times = (*C.int64_t)(p)
		}
		c.k = C.int(r.K)
		if r.ExcludeHistory {
			c.exclude_history = 1
		}
		if len(r.Exclude) > 0 {
			p := take(4 * len(r.Exclude))
			copy(unsafe.Slice((*int32)(p), len(r.Exclude)), r.Exclude)
			c.exclude = (*C.int32_t)(p)
			c.n_exclude = C.size_t(len(r.Exclude))
		}
		if r.ExcludeMask != nil {
			p := take(len(r.ExcludeMask))
			copy(unsafe.Slice((*uint8)(p), len(r.ExcludeMask)), r.ExcludeMask)
			c.exclude_mask = (*C.uint8_t)(p)
		}
		if r.Candidates != nil {
			p := take(4*len(r.Candidates) + 4) // non-NULL even when empty
			copy(unsafe.Slice((*int32)(p), len(r.Candidates)), r.Candidates)
			c.candidates = (*C.int32_t)(p)
			c.n_candidates = C.size_t(len(r.Candidates))
		}
		if r.Adapter != nil {
			c.adapter = r.Adapter.p
		}
	}
	out := &cRequests{base: base, ptrs: (**C.recsys_request)(ptrs)}
	if len(reqs) > 0 {
		out.one = ptrSlice[0]
	}
	return out, nil
}

func (r *cRequests) free() { C.free(r.base) }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func (s *Session) with(reqs []Request, f func(*cRequests) C.recsys_status) error {
	if s.p == nil || s.ctx.p == nil {
		return errClosed("Session or its Context")
	}
	defer runtime.KeepAlive(s)
	defer runtime.KeepAlive(reqs) // their adapters
	c, err := s.toC(reqs)
	if err != nil {
		return err
	}
	defer c.free()
	return call(s.ctx.p, func() C.recsys_status { return f(c) })
}

func f32ptr(v []float32) *C.float {
	if len(v) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&v[0]))
}

// ScoreRequestInto writes a request's scores into out: n_items+1 floats
// (index = dense id), or one per candidate when Candidates is set.
func (s *Session) ScoreRequestInto(req Request, out []float32) error {
	return s.with([]Request{req}, func(c *cRequests) C.recsys_status {
		return C.recsys_session_score_request(s.p, c.one, f32ptr(out), C.size_t(len(out)))
	})
}

// ScoreRequest returns a request's scores (see ScoreRequestInto).
func (s *Session) ScoreRequest(req Request) ([]float32, error) {
	n := int(s.nItems) + 1
	if req.Candidates != nil {
		n = len(req.Candidates)
	}
	out := make([]float32, n)
	if err := s.ScoreRequestInto(req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// TopKRequest returns the request's top K, best first (fewer only when
// fewer items are eligible).
func (s *Session) TopKRequest(req Request) ([]int32, []float32, error) {
	items := make([]int32, req.K+1)
	scores := make([]float32, req.K+1)
	var n C.size_t
	err := s.with([]Request{req}, func(c *cRequests) C.recsys_status {
		return C.recsys_session_topk_request(s.p, c.one, (*C.int32_t)(unsafe.Pointer(&items[0])), f32ptr(scores), &n)
	})
	if err != nil {
		return nil, nil, err
	}
	return items[:n], scores[:n], nil
}

// Batch holds TopKBatch results: row i has Counts[i] items at i*Stride.
type Batch struct {
	Stride int
	Items  []int32
	Scores []float32
	Counts []int
}

// Row i's items and scores.
func (b *Batch) Row(i int) ([]int32, []float32) {
	return b.Items[i*b.Stride : i*b.Stride+b.Counts[i]], b.Scores[i*b.Stride : i*b.Stride+b.Counts[i]]
}

// TopKBatch scores many requests in one call (histories encoded in
// batches, one matrix product per batch, over the ctx's threads); the
// results equal TopKRequest for each. The row width is the largest K.
func (s *Session) TopKBatch(reqs []Request) (*Batch, error) {
	stride := 0
	for _, r := range reqs {
		if r.K > stride {
			stride = r.K
		}
	}
	b := &Batch{Stride: stride, Items: make([]int32, len(reqs)*stride+1),
		Scores: make([]float32, len(reqs)*stride+1), Counts: make([]int, len(reqs))}
	for i := range b.Scores {
		b.Scores[i] = float32(math.Inf(-1))
	}
	if len(reqs) > 0 {
		counts := make([]C.size_t, len(reqs))
		err := s.with(reqs, func(c *cRequests) C.recsys_status {
			return C.recsys_session_topk_batch(s.p, c.ptrs, C.size_t(len(reqs)), C.size_t(stride),
				(*C.int32_t)(unsafe.Pointer(&b.Items[0])), f32ptr(b.Scores), &counts[0])
		})
		if err != nil {
			return nil, err
		}
		for i, n := range counts {
			b.Counts[i] = int(n)
		}
	}
	b.Items, b.Scores = b.Items[:len(reqs)*stride], b.Scores[:len(reqs)*stride]
	return b, nil
}

// UserVector encodes a request's history: score(i) = UserVector . ItemVectors row i.
func (s *Session) UserVector(req Request) ([]float32, error) {
	info, err := s.model.Info()
	if err != nil {
		return nil, err
	}
	v := make([]float32, info.Dim)
	err = s.with([]Request{req}, func(c *cRequests) C.recsys_status {
		return C.recsys_session_user_vector(s.p, c.one, f32ptr(v), C.size_t(len(v)))
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ---------------------------------------------------------------- Analysis

// ApEn is an Approximate Entropy estimator (apen.m, apen.r, apen.window);
// it keeps its Context alive.
type ApEn struct {
	p   *C.recsys_apen
	ctx *Context
}

func NewApEn(ctx *Context, opts *Options) (*ApEn, error) {
	defer runtime.KeepAlive(opts)
	var p *C.recsys_apen
	if err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_apen_new(c, opts.ptr(), &p) }); err != nil {
		return nil, err
	}
	a := &ApEn{p, ctx}
	runtime.SetFinalizer(a, (*ApEn).Close)
	return a, nil
}

func (a *ApEn) Close() {
	if a.p != nil {
		C.recsys_apen_free(a.p)
		a.p = nil
	}
}

func (a *ApEn) do(f func() C.recsys_status) error {
	if a.p == nil || a.ctx.p == nil {
		return errClosed("ApEn or its Context")
	}
	defer runtime.KeepAlive(a)
	return call(a.ctx.p, f)
}

// Sequence is the ApEn of one categorical sequence.
func (a *ApEn) Sequence(seq []int32) (float64, error) {
	var v C.double
	err := a.do(func() C.recsys_status { return C.recsys_apen_sequence(a.p, i32ptr(seq), C.size_t(len(seq)), &v) })
	runtime.KeepAlive(seq)
	return float64(v), err
}

// Numeric is the ApEn of one numeric sequence (tolerance apen.r).
func (a *ApEn) Numeric(seq []float64) (float64, error) {
	var v C.double
	var p *C.double
	if len(seq) > 0 {
		p = (*C.double)(unsafe.Pointer(&seq[0]))
	}
	err := a.do(func() C.recsys_status { return C.recsys_apen_numeric(a.p, p, C.size_t(len(seq)), &v) })
	runtime.KeepAlive(seq)
	return float64(v), err
}

// Dataset is the dataset ApEn: the mean over users, per-user values (NaN
// for users too short) and how many users were averaged.
func (a *ApEn) Dataset(ds *Dataset) (float64, []float64, int64, error) {
	n, err := ds.Stat(StatUsers)
	if err != nil {
		return 0, nil, 0, err
	}
	per := make([]float64, int(n)+1)
	var v C.double
	var used C.int64_t
	err = a.do(func() C.recsys_status {
		return C.recsys_apen_dataset(a.p, ds.p, &v, (*C.double)(unsafe.Pointer(&per[0])), C.size_t(int(n)), &used)
	})
	runtime.KeepAlive(ds)
	if err != nil {
		return 0, nil, 0, err
	}
	return float64(v), per[:int(n)], int64(used), nil
}

// PerfLaw is a Performance Law fitter; it keeps its Context alive.
type PerfLaw struct {
	p   *C.recsys_perflaw
	ctx *Context
}

func NewPerfLaw(ctx *Context) (*PerfLaw, error) {
	var p *C.recsys_perflaw
	if err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_perflaw_new(c, &p) }); err != nil {
		return nil, err
	}
	pl := &PerfLaw{p, ctx}
	runtime.SetFinalizer(pl, (*PerfLaw).Close)
	return pl, nil
}

func (pl *PerfLaw) Close() {
	if pl.p != nil {
		C.recsys_perflaw_free(pl.p)
		pl.p = nil
	}
}

func (pl *PerfLaw) do(f func() C.recsys_status) error {
	if pl.p == nil || pl.ctx.p == nil {
		return errClosed("PerfLaw or its Context")
	}
	defer runtime.KeepAlive(pl)
	return call(pl.ctx.p, f)
}

// Add one observation: layers, hidden size, data term, metric.
func (pl *PerfLaw) Add(layers, hidden, data, metric float64) error {
	return pl.do(func() C.recsys_status {
		return C.recsys_perflaw_add(pl.p, C.double(layers), C.double(hidden), C.double(data), C.double(metric))
	})
}

// Fit the law (ENumeric when the observations cannot determine it).
func (pl *PerfLaw) Fit() error {
	return pl.do(func() C.recsys_status { return C.recsys_perflaw_fit(pl.p) })
}

// PerfLawNParams is the number of fitted parameters (w1..w5, b).
const PerfLawNParams = int(C.RECSYS_PERFLAW_N_PARAMS)

// Params are the fitted parameters, their standard errors and R².
func (pl *PerfLaw) Params() (params, stderrs [PerfLawNParams]float64, r2 float64, err error) {
	var p, e [PerfLawNParams]C.double
	var r C.double
	err = pl.do(func() C.recsys_status { return C.recsys_perflaw_params(pl.p, &p[0], &e[0], &r) })
	for i := range p {
		params[i], stderrs[i] = float64(p[i]), float64(e[i])
	}
	return params, stderrs, float64(r), err
}

// Predict the metric for a configuration.
func (pl *PerfLaw) Predict(layers, hidden, data float64) (float64, error) {
	var v C.double
	err := pl.do(func() C.recsys_status {
		return C.recsys_perflaw_predict(pl.p, C.double(layers), C.double(hidden), C.double(data), &v)
	})
	return float64(v), err
}

// BestSize is the (layers, hidden) among the candidates that maximises the
// prediction for data, and that prediction.
func (pl *PerfLaw) BestSize(data float64, layers, hidden []float64) (bestLayers, bestHidden, metric float64, err error) {
	if len(layers) == 0 || len(hidden) == 0 {
		return 0, 0, 0, &Error{Code: EInvalid, Message: "no candidates"}
	}
	var l, h, m C.double
	err = pl.do(func() C.recsys_status {
		return C.recsys_perflaw_best_size(pl.p, C.double(data), (*C.double)(unsafe.Pointer(&layers[0])), C.size_t(len(layers)),
			(*C.double)(unsafe.Pointer(&hidden[0])), C.size_t(len(hidden)), &l, &h, &m)
	})
	runtime.KeepAlive(layers)
	runtime.KeepAlive(hidden)
	return float64(l), float64(h), float64(m), err
}
