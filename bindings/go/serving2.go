package librecsys

// Tensors by name (weights import/export), user states for incremental
// serving, per-user LoRA adapters and adapter stores.

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <librecsys/recsys.h>
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// NewBlankModel makes a model with the config of opts for nItems items
// (external ids "1".."nItems"), initialised as NewModel does, without data.
func NewBlankModel(ctx *Context, opts *Options, nItems int32) (*Model, error) {
	defer runtime.KeepAlive(opts)
	var p *C.recsys_model
	if err := ctx.do(func(c *C.recsys_ctx) C.recsys_status {
		return C.recsys_model_new_blank(c, opts.ptr(), C.int32_t(nItems), &p)
	}); err != nil {
		return nil, err
	}
	return newModel(p), nil
}

// TensorInfo names a model tensor, its shape and float count.
type TensorInfo struct {
	Name  string
	Shape []int64
	Numel int64
}

// TensorCount is the number of named parameter tensors.
func (m *Model) TensorCount() (int, error) {
	if err := m.ok(); err != nil {
		return 0, err
	}
	defer runtime.KeepAlive(m)
	var n C.int
	err := call(nil, func() C.recsys_status { return C.recsys_model_tensor_count(m.p, &n) })
	return int(n), err
}

// Tensor describes tensor i (0 <= i < TensorCount).
func (m *Model) Tensor(i int) (TensorInfo, error) {
	if err := m.ok(); err != nil {
		return TensorInfo{}, err
	}
	defer runtime.KeepAlive(m)
	var name *C.char
	var ndim C.int
	var shape [C.RECSYS_TENSOR_MAX_DIMS]C.int64_t
	var numel C.int64_t
	err := call(nil, func() C.recsys_status {
		return C.recsys_model_tensor_info(m.p, C.int(i), &name, &ndim, &shape[0], &numel)
	})
	if err != nil {
		return TensorInfo{}, err
	}
	t := TensorInfo{Name: C.GoString(name), Numel: int64(numel)}
	for d := 0; d < int(ndim); d++ {
		t.Shape = append(t.Shape, int64(shape[d]))
	}
	return t, nil
}

// Tensors describes every tensor in order.
func (m *Model) Tensors() ([]TensorInfo, error) {
	n, err := m.TensorCount()
	if err != nil {
		return nil, err
	}
	out := make([]TensorInfo, 0, n)
	for i := 0; i < n; i++ {
		t, err := m.Tensor(i)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// GetTensorInto copies tensor name into out (len(out) must be its numel).
func (m *Model) GetTensorInto(ctx *Context, name string, out []float32) error {
	if err := m.ok(); err != nil {
		return err
	}
	defer runtime.KeepAlive(m)
	defer runtime.KeepAlive(out)
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return ctx.do(func(c *C.recsys_ctx) C.recsys_status {
		return C.recsys_model_get_tensor(c, m.p, cs, f32ptr(out), C.size_t(len(out)))
	})
}

// GetTensor returns a copy of tensor name (ENotFound for an unknown name).
func (m *Model) GetTensor(ctx *Context, name string) ([]float32, error) {
	ts, err := m.Tensors()
	if err != nil {
		return nil, err
	}
	var out []float32
	for _, t := range ts {
		if t.Name == name {
			out = make([]float32, t.Numel)
		}
	}
	if err := m.GetTensorInto(ctx, name, out); err != nil {
		return nil, err
	}
	return out, nil
}

// SetTensor overwrites tensor name; only on a model nothing else holds (no
// session, trainer, adapter or store): EInvalid otherwise.
func (m *Model) SetTensor(ctx *Context, name string, data []float32) error {
	if err := m.ok(); err != nil {
		return err
	}
	defer runtime.KeepAlive(m)
	defer runtime.KeepAlive(data)
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return ctx.do(func(c *C.recsys_ctx) C.recsys_status {
		return C.recsys_model_set_tensor(c, m.p, cs, f32ptr(data), C.size_t(len(data)))
	})
}

// SetItemIDs sets the external ids of items 1..n_items (ids[0] is item 1).
func (m *Model) SetItemIDs(ctx *Context, ids []string) error {
	if err := m.ok(); err != nil {
		return err
	}
	defer runtime.KeepAlive(m)
	n := len(ids)
	arr := (*[1 << 28]*C.char)(C.malloc(C.size_t(n+1) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))[: n+1 : n+1]
	for i, s := range ids {
		arr[i] = C.CString(s)
	}
	defer func() {
		for i := 0; i < n; i++ {
			C.free(unsafe.Pointer(arr[i]))
		}
		C.free(unsafe.Pointer(&arr[0]))
	}()
	return ctx.do(func(c *C.recsys_ctx) C.recsys_status {
		return C.recsys_model_set_item_ids(c, m.p, &arr[0], C.int32_t(n))
	})
}

// UserState holds a user's recent events for incremental serving: the
// scores of s.ScoreRequest(u.Request(k)) equal those of a Request with the
// whole history. Not safe for concurrent use; Close frees it (a finalizer
// is the safety net).
type UserState struct {
	p     *C.recsys_user_state
	model *Model
}

func NewUserState(model *Model) (*UserState, error) {
	if err := model.ok(); err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(model)
	var p *C.recsys_user_state
	if err := call(nil, func() C.recsys_status { return C.recsys_user_state_new(model.p, &p) }); err != nil {
		return nil, err
	}
	u := &UserState{p, model}
	runtime.SetFinalizer(u, (*UserState).Close)
	return u, nil
}

func (u *UserState) Close() {
	if u.p != nil {
		C.recsys_user_state_free(u.p)
		u.p = nil
	}
}

func (u *UserState) do(f func() C.recsys_status) error {
	if u == nil || u.p == nil {
		return errClosed("UserState")
	}
	defer runtime.KeepAlive(u)
	return call(nil, f)
}

// Append adds one event (item 1..n_items; times non-decreasing, 0 when unused).
func (u *UserState) Append(item int32, time int64) error {
	return u.do(func() C.recsys_status { return C.recsys_user_state_append(u.p, C.int32_t(item), C.int64_t(time)) })
}

func (u *UserState) Clear() error {
	return u.do(func() C.recsys_status { return C.recsys_user_state_clear(u.p) })
}

// Bytes is the memory the state occupies.
func (u *UserState) Bytes() (int, error) {
	var b C.size_t
	err := u.do(func() C.recsys_status { return C.recsys_user_state_bytes(u.p, &b) })
	return int(b), err
}

// Request is a Request for the top k on the window (copied into Go slices).
func (u *UserState) Request(k int) (Request, error) {
	var r C.recsys_request
	r.struct_size = C.size_t(unsafe.Sizeof(r))
	if err := u.do(func() C.recsys_status { return C.recsys_user_state_request(u.p, &r) }); err != nil {
		return Request{}, err
	}
	n := int(r.n_history)
	req := Request{K: k, History: make([]int32, n)}
	if n > 0 {
		copy(req.History, unsafe.Slice((*int32)(unsafe.Pointer(r.history)), n))
		if r.times != nil {
			req.Times = make([]int64, n)
			copy(req.Times, unsafe.Slice((*int64)(unsafe.Pointer(r.times)), n))
		}
	}
	runtime.KeepAlive(u)
	return req, nil
}

// Adapter kinds.
const (
	AdapterUser   = int(C.RECSYS_ADAPTER_USER)
	AdapterShared = int(C.RECSYS_ADAPTER_SHARED)
	AdapterBank   = int(C.RECSYS_ADAPTER_BANK)
)

// Adapter is a LoRA adapter. It keeps its Context (errors) and Model
// alive; after Context.Close() its calls return EState.
type Adapter struct {
	p     *C.recsys_adapter
	ctx   *Context
	model *Model
}

func wrapAdapter(p *C.recsys_adapter, ctx *Context, model *Model) *Adapter {
	a := &Adapter{p, ctx, model}
	runtime.SetFinalizer(a, (*Adapter).Close)
	return a
}

// NewAdapter makes an adapter of kind (AdapterUser, ...) for model.
func NewAdapter(ctx *Context, model *Model, opts *Options, kind int) (*Adapter, error) {
	if err := model.ok(); err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(opts)
	defer runtime.KeepAlive(model)
	var p *C.recsys_adapter
	if err := ctx.do(func(c *C.recsys_ctx) C.recsys_status {
		return C.recsys_adapter_new(c, model.p, opts.ptr(), C.int(kind), &p)
	}); err != nil {
		return nil, err
	}
	return wrapAdapter(p, ctx, model), nil
}

// AdapterFromBuffer reads an adapter written by ToBuffer (EFormat damaged, EInvalid another model's).
func AdapterFromBuffer(ctx *Context, model *Model, buf []byte) (*Adapter, error) {
	if err := model.ok(); err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(model)
	defer runtime.KeepAlive(buf)
	var bp unsafe.Pointer
	if len(buf) > 0 {
		bp = unsafe.Pointer(&buf[0])
	}
	var p *C.recsys_adapter
	if err := ctx.do(func(c *C.recsys_ctx) C.recsys_status {
		return C.recsys_adapter_from_buffer(c, model.p, bp, C.size_t(len(buf)), &p)
	}); err != nil {
		return nil, err
	}
	return wrapAdapter(p, ctx, model), nil
}

// MergeAdapters merges USER/SHARED adapters of one shape into a new USER adapter.
func MergeAdapters(ctx *Context, adapters []*Adapter, weights []float32, opts *Options) (*Adapter, error) {
	if len(adapters) == 0 || len(adapters) != len(weights) {
		return nil, &Error{Code: EInvalid, Message: "merge needs adapters and one weight per adapter"}
	}
	defer runtime.KeepAlive(adapters)
	defer runtime.KeepAlive(weights)
	defer runtime.KeepAlive(opts)
	n := len(adapters)
	arr := (*[1 << 28]*C.recsys_adapter)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof((*C.recsys_adapter)(nil)))))[:n:n]
	defer C.free(unsafe.Pointer(&arr[0]))
	for i, a := range adapters {
		if a == nil || a.p == nil {
			return nil, errClosed("Adapter")
		}
		arr[i] = a.p
	}
	var p *C.recsys_adapter
	if err := ctx.do(func(c *C.recsys_ctx) C.recsys_status {
		return C.recsys_adapter_merge(c, (**C.recsys_adapter)(unsafe.Pointer(&arr[0])), f32ptr(weights), C.size_t(n), opts.ptr(), &p)
	}); err != nil {
		return nil, err
	}
	return wrapAdapter(p, ctx, adapters[0].model), nil
}

func (a *Adapter) Close() {
	if a.p != nil {
		C.recsys_adapter_free(a.p)
		a.p = nil
	}
}

func (a *Adapter) do(f func() C.recsys_status) error {
	if a == nil || a.p == nil || a.ctx.p == nil {
		return errClosed("Adapter or its Context")
	}
	defer runtime.KeepAlive(a)
	return call(a.ctx.p, f)
}

// Info returns the kind, rank and number of float parameters.
func (a *Adapter) Info() (kind, rank int, nParams int64, err error) {
	var k, r C.int
	var n C.int64_t
	err = a.do(func() C.recsys_status { return C.recsys_adapter_info(a.p, &k, &r, &n) })
	return int(k), int(r), int64(n), err
}

func (a *Adapter) GetParamsInto(out []float32) error {
	defer runtime.KeepAlive(out)
	return a.do(func() C.recsys_status { return C.recsys_adapter_get_params(a.p, f32ptr(out), C.size_t(len(out))) })
}

func (a *Adapter) Params() ([]float32, error) {
	_, _, n, err := a.Info()
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	return out, a.GetParamsInto(out)
}

// SetParams overwrites the parameters (ENumeric for non-finite values).
func (a *Adapter) SetParams(p []float32) error {
	defer runtime.KeepAlive(p)
	return a.do(func() C.recsys_status { return C.recsys_adapter_set_params(a.p, f32ptr(p), C.size_t(len(p))) })
}

// ToBuffer serialises the adapter (CRC-32C checked).
func (a *Adapter) ToBuffer() ([]byte, error) {
	var b unsafe.Pointer
	var n C.size_t
	if err := a.do(func() C.recsys_status { return C.recsys_adapter_to_buffer(a.p, &b, &n) }); err != nil {
		return nil, err
	}
	defer C.recsys_free(b)
	return C.GoBytes(b, C.int(n)), nil
}

// Fold returns a new model: the adapter's model with the adapter folded in.
func (a *Adapter) Fold() (*Model, error) {
	var m *C.recsys_model
	if err := a.do(func() C.recsys_status { return C.recsys_adapter_fold(a.p, &m) }); err != nil {
		return nil, err
	}
	return newModel(m), nil
}

// StoreStats are an adapter store's counters.
type StoreStats struct {
	NUsers, Cached, CacheBytes, Hits, Misses int64
}

// AdapterStore is a file of per-user USER adapters, opened by mmap with an
// LRU cache. It keeps its Context and Model alive; Get/Put/Pin may be
// called from several goroutines.
type AdapterStore struct {
	p     *C.recsys_adapter_store
	ctx   *Context
	model *Model
}

// CreateAdapterStore creates an empty store for users 0..nUsers-1 shaped by opts.
func CreateAdapterStore(ctx *Context, model *Model, opts *Options, path string, nUsers int64) error {
	if err := model.ok(); err != nil {
		return err
	}
	defer runtime.KeepAlive(model)
	defer runtime.KeepAlive(opts)
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	return ctx.do(func(c *C.recsys_ctx) C.recsys_status {
		return C.recsys_adapter_store_create(c, model.p, opts.ptr(), cs, C.int64_t(nUsers))
	})
}

func wrapStore(p *C.recsys_adapter_store, ctx *Context, model *Model) *AdapterStore {
	s := &AdapterStore{p, ctx, model}
	runtime.SetFinalizer(s, (*AdapterStore).Close)
	return s
}

// OpenAdapterStore opens a store file (writable: Put allowed).
func OpenAdapterStore(ctx *Context, model *Model, path string, writable bool, opts *Options) (*AdapterStore, error) {
	if err := model.ok(); err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(model)
	defer runtime.KeepAlive(opts)
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	w := C.int(0)
	if writable {
		w = 1
	}
	var p *C.recsys_adapter_store
	if err := ctx.do(func(c *C.recsys_ctx) C.recsys_status {
		return C.recsys_adapter_store_open(c, model.p, cs, w, opts.ptr(), &p)
	}); err != nil {
		return nil, err
	}
	return wrapStore(p, ctx, model), nil
}

// OpenAdapterStoreBuffer opens a read-only store from a store file's bytes (copied).
func OpenAdapterStoreBuffer(ctx *Context, model *Model, buf []byte, opts *Options) (*AdapterStore, error) {
	if err := model.ok(); err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(model)
	defer runtime.KeepAlive(opts)
	defer runtime.KeepAlive(buf)
	var bp unsafe.Pointer
	if len(buf) > 0 {
		bp = unsafe.Pointer(&buf[0])
	}
	var p *C.recsys_adapter_store
	if err := ctx.do(func(c *C.recsys_ctx) C.recsys_status {
		return C.recsys_adapter_store_open_buffer(c, model.p, bp, C.size_t(len(buf)), opts.ptr(), &p)
	}); err != nil {
		return nil, err
	}
	return wrapStore(p, ctx, model), nil
}

func (s *AdapterStore) Close() {
	if s.p != nil {
		C.recsys_adapter_store_close(s.p)
		s.p = nil
	}
}

func (s *AdapterStore) do(f func() C.recsys_status) error {
	if s == nil || s.p == nil || s.ctx.p == nil {
		return errClosed("AdapterStore or its Context")
	}
	defer runtime.KeepAlive(s)
	return call(s.ctx.p, f)
}

// Get returns user's adapter (ENotFound when none).
func (s *AdapterStore) Get(user int64) (*Adapter, error) {
	var p *C.recsys_adapter
	if err := s.do(func() C.recsys_status { return C.recsys_adapter_store_get(s.p, C.int64_t(user), &p) }); err != nil {
		return nil, err
	}
	return wrapAdapter(p, s.ctx, s.model), nil
}

// Put replaces user's adapter (synced first when sync).
func (s *AdapterStore) Put(user int64, a *Adapter, sync bool) error {
	if a == nil || a.p == nil {
		return errClosed("Adapter")
	}
	defer runtime.KeepAlive(a)
	y := C.int(0)
	if sync {
		y = 1
	}
	return s.do(func() C.recsys_status { return C.recsys_adapter_store_put(s.p, C.int64_t(user), a.p, y) })
}

// Pin keeps user's adapter in the cache (or unpins it).
func (s *AdapterStore) Pin(user int64, pin bool) error {
	y := C.int(0)
	if pin {
		y = 1
	}
	return s.do(func() C.recsys_status { return C.recsys_adapter_store_pin(s.p, C.int64_t(user), y) })
}

func (s *AdapterStore) Stats() (StoreStats, error) {
	var n, c, b, h, m C.int64_t
	err := s.do(func() C.recsys_status { return C.recsys_adapter_store_stats(s.p, &n, &c, &b, &h, &m) })
	return StoreStats{int64(n), int64(c), int64(b), int64(h), int64(m)}, err
}

// Train trains the adapter on ds with its model frozen: user -1 for
// SHARED / BANK adapters (every user), a user id for a USER adapter.
// It returns the mean loss.
func (a *Adapter) Train(ds *Dataset, user int64, opts *Options) (float64, error) {
	defer runtime.KeepAlive(ds)
	defer runtime.KeepAlive(opts)
	var loss C.double
	err := a.do(func() C.recsys_status {
		return C.recsys_adapter_train(a.p, ds.p, C.int64_t(user), opts.ptr(), &loss)
	})
	return float64(loss), err
}

// TrainSequence trains a USER adapter further on one explicit history of
// the model's dense item ids (times: nil or one per item); nothing is held
// out. It returns the mean loss (the lifelong update).
func (a *Adapter) TrainSequence(items []int32, times []int64, opts *Options) (float64, error) {
	if len(items) == 0 || (times != nil && len(times) != len(items)) {
		return 0, &Error{Code: EInvalid, Message: "TrainSequence needs items (and times of one length)"}
	}
	defer runtime.KeepAlive(opts)
	var tp *C.int64_t
	if times != nil {
		tp = (*C.int64_t)(unsafe.Pointer(&times[0]))
	}
	var loss C.double
	err := a.do(func() C.recsys_status {
		return C.recsys_adapter_train_sequence(a.p, (*C.int32_t)(unsafe.Pointer(&items[0])), tp,
			C.size_t(len(items)), opts.ptr(), &loss)
	})
	runtime.KeepAlive(items)
	runtime.KeepAlive(times)
	return float64(loss), err
}

// EvaluateAdapters is Evaluate with adapters: a user's adapter in store when
// it holds one, else adapter, else the base model (both may be nil).
// userRank: nil, or one float64 per dataset user receiving the 0-based
// target rank (NaN: not evaluated).
func EvaluateAdapters(ctx *Context, model *Model, adapter *Adapter, store *AdapterStore, ds *Dataset,
	opts *Options, userRank []float64) (map[string]float64, error) {
	defer runtime.KeepAlive(model)
	defer runtime.KeepAlive(adapter)
	defer runtime.KeepAlive(store)
	defer runtime.KeepAlive(ds)
	defer runtime.KeepAlive(opts)
	defer runtime.KeepAlive(userRank)
	if err := model.ok(); err != nil {
		return nil, err
	}
	var ap *C.recsys_adapter
	if adapter != nil {
		if adapter.p == nil {
			return nil, errClosed("Adapter")
		}
		ap = adapter.p
	}
	var sp *C.recsys_adapter_store
	if store != nil {
		if store.p == nil {
			return nil, errClosed("AdapterStore")
		}
		sp = store.p
	}
	if userRank != nil {
		if n, err := ds.Stat(StatUsers); err != nil || len(userRank) != int(n) {
			return nil, &Error{Code: EInvalid, Message: "userRank must have one entry per dataset user"}
		}
	}
	var rp *C.double
	if len(userRank) > 0 {
		rp = (*C.double)(unsafe.Pointer(&userRank[0]))
	}
	var m *C.recsys_metrics
	err := ctx.do(func(c *C.recsys_ctx) C.recsys_status {
		return C.recsys_evaluate_adapters(c, model.p, ap, sp, ds.p, opts.ptr(), rp, &m)
	})
	if err != nil {
		return nil, err
	}
	return takeMetrics(m), nil
}

// TopKState returns the top K after a user state's window
// (recsys_session_topk_state): req gives K, exclusions and candidates, and no
// History or Times (the state supplies them). For a model trained with
// model.positions = start only the events appended since the last call are
// encoded (keys and values cached in the state).
func (s *Session) TopKState(u *UserState, req Request) ([]int32, []float32, error) {
	if len(req.History) > 0 || req.Times != nil {
		return nil, nil, &Error{Code: EInvalid, Message: "the user state supplies history and times"}
	}
	if u == nil || u.p == nil {
		return nil, nil, errClosed("UserState")
	}
	defer runtime.KeepAlive(u)
	items := make([]int32, req.K+1)
	scores := make([]float32, req.K+1)
	var n C.size_t
	err := s.with([]Request{req}, func(c *cRequests) C.recsys_status {
		return C.recsys_session_topk_state(s.p, u.p, c.one, (*C.int32_t)(unsafe.Pointer(&items[0])), f32ptr(scores), &n)
	})
	if err != nil {
		return nil, nil, err
	}
	return items[:n], scores[:n], nil
}

// ScoreState returns the scores after a user state's window
// (recsys_session_score_state), as ScoreRequest.
func (s *Session) ScoreState(u *UserState, req Request) ([]float32, error) {
	if len(req.History) > 0 || req.Times != nil {
		return nil, &Error{Code: EInvalid, Message: "the user state supplies history and times"}
	}
	if u == nil || u.p == nil {
		return nil, errClosed("UserState")
	}
	defer runtime.KeepAlive(u)
	n := int(s.nItems) + 1
	if req.Candidates != nil {
		n = len(req.Candidates)
	}
	out := make([]float32, n)
	err := s.with([]Request{req}, func(c *cRequests) C.recsys_status {
		return C.recsys_session_score_state(s.p, u.p, c.one, f32ptr(out), C.size_t(len(out)))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
