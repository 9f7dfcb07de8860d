// Package librecsys is the Go binding of librecsys, sequential
// recommendation (SASRec, HSTU) in C, through cgo and pkg-config.
//
// Every type owning a C object has Close(); a finalizer calls it too, as a
// safety net. Objects keep Go references to what their C objects use (an
// Options, Trainer or Session its Context; a Trainer its Model and Dataset;
// a Session its Model), so the garbage collector never frees a ctx or a
// borrowed dataset first, and the C *_free calls never use the ctx, so any
// order of Close is safe. Errors are *Error values with the status code and
// the C message. A Context and the objects made from it are used by one
// goroutine at a time; Dataset and Model are read-only and may be shared:
// to score from several goroutines, give each its own Context and Session.
// Callbacks are Go funcs passed through cgo.Handle; they run on the
// goroutine that made the call, and a panic in one stops the call and is
// re-raised when it returns (it never unwinds through C).
package librecsys

/*
#cgo pkg-config: librecsys
#include <stdint.h>
#include <stdlib.h>
#include <librecsys/recsys.h>
recsys_status recsys_go_set_progress(recsys_trainer *t, uintptr_t handle);
recsys_status recsys_go_set_log(recsys_ctx *c, uintptr_t handle);
*/
import "C"

import (
	"fmt"
	"runtime"
	"runtime/cgo"
	"unsafe"
)

// Status is a recsys_status code.
type Status int

const (
	OK           Status = C.RECSYS_OK
	EInvalid     Status = C.RECSYS_E_INVALID
	ENoMem       Status = C.RECSYS_E_NOMEM
	EIO          Status = C.RECSYS_E_IO
	EParse       Status = C.RECSYS_E_PARSE
	EFormat      Status = C.RECSYS_E_FORMAT
	EState       Status = C.RECSYS_E_STATE
	EUnsupported Status = C.RECSYS_E_UNSUPPORTED
	ENumeric     Status = C.RECSYS_E_NUMERIC
	EAborted     Status = C.RECSYS_E_ABORTED
	ENotFound    Status = C.RECSYS_E_NOT_FOUND
	EInternal    Status = C.RECSYS_E_INTERNAL
)

// Dataset statistics for Dataset.Stat.
const (
	StatUsers  = int(C.RECSYS_STAT_USERS)
	StatItems  = int(C.RECSYS_STAT_ITEMS)
	StatEvents = int(C.RECSYS_STAT_EVENTS)
)

// Name is the status's C name, e.g. "RECSYS_E_NOT_FOUND".
func (s Status) Name() string { return C.GoString(C.recsys_status_str(C.recsys_status(s))) }

// Error is a failed librecsys call.
type Error struct {
	Code    Status
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s [%s]", e.Message, e.Code.Name()) }

// check turns a status into an error. It must run on the OS thread of the
// failing call (the last error is thread-local): call it inside call().
func check(st C.recsys_status, ctx *C.recsys_ctx) error {
	if st == C.RECSYS_OK {
		return nil
	}
	msg := C.GoString(C.recsys_last_errmsg())
	if msg == "" && ctx != nil {
		n := C.recsys_errmsg_copy(ctx, nil, 0)
		buf := make([]byte, int(n)+1)
		C.recsys_errmsg_copy(ctx, (*C.char)(unsafe.Pointer(&buf[0])), n+1)
		msg = string(buf[:n])
	}
	return &Error{Code: Status(st), Message: msg}
}

// call runs f and reads its error on one OS thread.
func call(ctx *C.recsys_ctx, f func() C.recsys_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return check(f(), ctx)
}

func errClosed(what string) error {
	return &Error{Code: EState, Message: what + " is closed"}
}

// CheckVersion reports whether the loaded library serves this binding's header.
func CheckVersion() error {
	return call(nil, func() C.recsys_status { return C.recsys_check_version(C.RECSYS_VERSION_NUMBER) })
}

// Version is the loaded library's version string.
func Version() string { return C.GoString(C.recsys_version_string()) }

// ------------------------------------------------------------------ Context

// Context holds the worker pool, seed, kernel table and error state.
type Context struct {
	p   *C.recsys_ctx
	log cgo.Handle
}

// NewContext makes a context with threads workers (0 = online CPUs) and a seed.
func NewContext(threads int, seed uint64) (*Context, error) {
	var p *C.recsys_ctx
	if err := call(nil, func() C.recsys_status { return C.recsys_ctx_new(&p) }); err != nil {
		return nil, err
	}
	c := &Context{p: p}
	runtime.SetFinalizer(c, (*Context).Close)
	if err := c.SetThreads(threads); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.SetSeed(seed); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close frees the context (idempotent). Objects made with it then return
// EState errors instead of using it; their Close still works.
func (c *Context) Close() {
	if c.p != nil {
		C.recsys_ctx_free(c.p)
		c.p = nil
	}
	if c.log != 0 {
		c.log.Delete()
		c.log = 0
	}
}

func (c *Context) do(f func(*C.recsys_ctx) C.recsys_status) error {
	if c == nil || c.p == nil {
		return errClosed("Context")
	}
	defer runtime.KeepAlive(c)
	return call(c.p, func() C.recsys_status { return f(c.p) })
}

func (c *Context) SetThreads(n int) error {
	return c.do(func(p *C.recsys_ctx) C.recsys_status { return C.recsys_ctx_set_threads(p, C.int(n)) })
}

func (c *Context) SetSeed(seed uint64) error {
	return c.do(func(p *C.recsys_ctx) C.recsys_status { return C.recsys_ctx_set_seed(p, C.uint64_t(seed)) })
}

func (c *Context) ISA() string {
	defer runtime.KeepAlive(c)
	return C.GoString(C.recsys_ctx_isa(c.p))
}

// ErrMsg is the message of the last error on this context ("" when none).
func (c *Context) ErrMsg() string {
	defer runtime.KeepAlive(c)
	return C.GoString(C.recsys_ctx_errmsg(c.p))
}

// ------------------------------------------------------------------ Options

// Options holds "section.key" settings; it keeps its Context alive.
type Options struct {
	p   *C.recsys_opts
	ctx *Context
}

// NewOptions makes an options set, applying kv in order.
func NewOptions(ctx *Context, kv ...[2]string) (*Options, error) {
	var p *C.recsys_opts
	if err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_opts_new(c, &p) }); err != nil {
		return nil, err
	}
	o := &Options{p, ctx}
	runtime.SetFinalizer(o, (*Options).Close)
	for _, e := range kv {
		if err := o.Set(e[0], e[1]); err != nil {
			o.Close()
			return nil, err
		}
	}
	return o, nil
}

func (o *Options) Close() {
	if o.p != nil {
		C.recsys_opts_free(o.p)
		o.p = nil
	}
}

func (o *Options) ptr() *C.recsys_opts {
	if o == nil {
		return nil
	}
	return o.p
}

func (o *Options) Set(key, value string) error {
	if o.p == nil {
		return errClosed("Options")
	}
	if o.ctx.p == nil {
		return errClosed("Context of these Options")
	}
	k, v := C.CString(key), C.CString(value)
	defer C.free(unsafe.Pointer(k))
	defer C.free(unsafe.Pointer(v))
	defer runtime.KeepAlive(o)
	return call(o.ctx.p, func() C.recsys_status { return C.recsys_opts_set(o.p, k, v) })
}

func (o *Options) Get(key string) (string, error) {
	if o.p == nil {
		return "", errClosed("Options")
	}
	if o.ctx.p == nil {
		return "", errClosed("Context of these Options")
	}
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	defer runtime.KeepAlive(o)
	var v *C.char
	err := call(o.ctx.p, func() C.recsys_status { return C.recsys_opts_get(o.p, k, &v) })
	if err != nil {
		return "", err
	}
	return C.GoString(v), nil
}

// Keys lists every known key (Describe gives types, defaults and docs).
func (o *Options) Keys() []string {
	defer runtime.KeepAlive(o)
	n := int(C.recsys_opts_count(o.p))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = C.GoString(C.recsys_opts_key(o.p, C.int(i)))
	}
	return keys
}

// ------------------------------------------------------------------ Dataset

// Dataset is an immutable set of user sequences; it keeps no ctx.
type Dataset struct{ p *C.recsys_dataset }

func newDataset(p *C.recsys_dataset) *Dataset {
	d := &Dataset{p}
	runtime.SetFinalizer(d, (*Dataset).Close)
	return d
}

// SyntheticDataset is the embedded synthetic data (data.synthetic_* options).
func SyntheticDataset(ctx *Context, opts *Options) (*Dataset, error) {
	var p *C.recsys_dataset
	defer runtime.KeepAlive(opts)
	err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_dataset_synthetic(c, opts.ptr(), &p) })
	if err != nil {
		return nil, err
	}
	return newDataset(p), nil
}

// OpenDataset opens a file as the CLI does ("synthetic" for the embedded data).
func OpenDataset(ctx *Context, path string, opts *Options) (*Dataset, error) {
	s := C.CString(path)
	defer C.free(unsafe.Pointer(s))
	defer runtime.KeepAlive(opts)
	var p *C.recsys_dataset
	err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_dataset_open(c, s, opts.ptr(), &p) })
	if err != nil {
		return nil, err
	}
	return newDataset(p), nil
}

func (d *Dataset) Close() {
	if d.p != nil {
		C.recsys_dataset_free(d.p)
		d.p = nil
	}
}

func (d *Dataset) Stat(which int) (float64, error) {
	if d.p == nil {
		return 0, errClosed("Dataset")
	}
	defer runtime.KeepAlive(d)
	var v C.double
	err := call(nil, func() C.recsys_status { return C.recsys_dataset_stat(d.p, C.int(which), &v) })
	return float64(v), err
}

// UserItems copies the user's dense item ids (a copy: Go cannot keep the
// dataset alive through a slice of C memory; see WithUserItems).
func (d *Dataset) UserItems(user int64) ([]int32, error) {
	var out []int32
	err := d.WithUserItems(user, func(items []int32) { out = append([]int32(nil), items...) })
	return out, err
}

// WithUserItems calls fn with the user's items viewed in place (no copy);
// the slice is valid only during fn, which keeps the dataset alive.
func (d *Dataset) WithUserItems(user int64, fn func([]int32)) error {
	if d.p == nil {
		return errClosed("Dataset")
	}
	defer runtime.KeepAlive(d)
	var items *C.int32_t
	var n C.size_t
	err := call(nil, func() C.recsys_status {
		return C.recsys_dataset_user_items(d.p, C.int64_t(user), &items, nil, &n)
	})
	if err != nil {
		return err
	}
	if n == 0 {
		fn(nil)
	} else {
		fn(unsafe.Slice((*int32)(unsafe.Pointer(items)), int(n)))
	}
	return nil
}

func (d *Dataset) ItemID(name string) (int32, error) {
	s := C.CString(name)
	defer C.free(unsafe.Pointer(s))
	defer runtime.KeepAlive(d)
	var v C.int32_t
	err := call(nil, func() C.recsys_status { return C.recsys_dataset_item_id(d.p, s, &v) })
	return int32(v), err
}

// -------------------------------------------------------------------- Model

// Model is a SASRec/HSTU model; it keeps no ctx and is reference-counted in C.
type Model struct{ p *C.recsys_model }

func newModel(p *C.recsys_model) *Model {
	m := &Model{p}
	runtime.SetFinalizer(m, (*Model).Close)
	return m
}

func NewModel(ctx *Context, opts *Options, ds *Dataset) (*Model, error) {
	defer runtime.KeepAlive(opts)
	defer runtime.KeepAlive(ds)
	var p *C.recsys_model
	err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_model_new(c, opts.ptr(), ds.p, &p) })
	if err != nil {
		return nil, err
	}
	return newModel(p), nil
}

func LoadModel(ctx *Context, path string) (*Model, error) {
	s := C.CString(path)
	defer C.free(unsafe.Pointer(s))
	var p *C.recsys_model
	err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_model_load(c, s, &p) })
	if err != nil {
		return nil, err
	}
	return newModel(p), nil
}

func (m *Model) Save(ctx *Context, path string) error {
	s := C.CString(path)
	defer C.free(unsafe.Pointer(s))
	defer runtime.KeepAlive(m)
	return ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_model_save(c, m.p, s) })
}

func (m *Model) Close() {
	if m.p != nil {
		C.recsys_model_free(m.p)
		m.p = nil
	}
}

func (m *Model) NItems() (int32, error) {
	defer runtime.KeepAlive(m)
	var n C.int32_t
	err := call(nil, func() C.recsys_status { return C.recsys_model_n_items(m.p, &n) })
	return int32(n), err
}

func (m *Model) Get(key string) (string, error) {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	defer runtime.KeepAlive(m)
	var v *C.char
	err := call(nil, func() C.recsys_status { return C.recsys_model_get(m.p, k, &v) })
	if err != nil {
		return "", err
	}
	return C.GoString(v), nil
}

// ------------------------------------------------------------------ Trainer

// Progress is a copy of recsys_progress.
type Progress struct {
	Epoch, Epochs int
	Step, Steps   int64
	Loss          float64
	Elapsed       float64
	SamplesPerSec float64
}

type progressCb struct {
	fn    func(Progress) bool
	panic interface{}
}

// Trainer trains a model on a dataset; it keeps its Context, Model and Dataset alive.
type Trainer struct {
	p      *C.recsys_trainer
	ctx    *Context
	model  *Model
	ds     *Dataset
	cb     *progressCb
	handle cgo.Handle
}

func NewTrainer(ctx *Context, model *Model, ds *Dataset, opts *Options) (*Trainer, error) {
	defer runtime.KeepAlive(opts)
	var p *C.recsys_trainer
	err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_trainer_new(c, model.p, ds.p, opts.ptr(), &p) })
	if err != nil {
		return nil, err
	}
	t := &Trainer{p: p, ctx: ctx, model: model, ds: ds}
	runtime.SetFinalizer(t, (*Trainer).Close)
	return t, nil
}

func (t *Trainer) Close() {
	if t.p != nil {
		C.recsys_trainer_free(t.p)
		t.p = nil
	}
	if t.handle != 0 {
		t.handle.Delete()
		t.handle = 0
	}
}

//export goProgress
func goProgress(user C.uintptr_t, p *C.recsys_progress) (stop C.int) {
	cb := cgo.Handle(user).Value().(*progressCb)
	defer func() {
		if r := recover(); r != nil { // never unwind into C
			cb.panic = r
			stop = 1
		}
	}()
	if cb.fn(Progress{int(p.epoch), int(p.epochs), int64(p.step), int64(p.steps), float64(p.loss),
		float64(p.elapsed_seconds), float64(p.samples_per_second)}) {
		return 1
	}
	return 0
}

// SetProgress calls fn between batches on the goroutine running RunEpoch;
// fn returning true stops training (RunEpoch returns EAborted); a panic in
// fn stops it and is re-raised from RunEpoch. nil removes the callback.
func (t *Trainer) SetProgress(fn func(Progress) bool) error {
	if t.p == nil || t.ctx.p == nil {
		return errClosed("Trainer or its Context")
	}
	defer runtime.KeepAlive(t)
	var h cgo.Handle
	var cb *progressCb
	if fn != nil {
		cb = &progressCb{fn: fn}
		h = cgo.NewHandle(cb)
	}
	err := call(t.ctx.p, func() C.recsys_status { return C.recsys_go_set_progress(t.p, C.uintptr_t(h)) })
	if err != nil {
		if h != 0 {
			h.Delete()
		}
		return err
	}
	if t.handle != 0 {
		t.handle.Delete()
	}
	t.handle, t.cb = h, cb
	return nil
}

// RunEpoch trains one epoch and returns its mean loss.
func (t *Trainer) RunEpoch() (float64, error) {
	if t.p == nil || t.ctx.p == nil {
		return 0, errClosed("Trainer or its Context")
	}
	defer runtime.KeepAlive(t)
	var loss C.double
	err := call(t.ctx.p, func() C.recsys_status { return C.recsys_trainer_run_epoch(t.p, &loss) })
	if t.cb != nil && t.cb.panic != nil {
		r := t.cb.panic
		t.cb.panic = nil
		panic(r)
	}
	return float64(loss), err
}

// ------------------------------------------------------------------ Session

// Session scores histories; one per goroutine. It keeps its Context and Model alive.
type Session struct {
	p      *C.recsys_session
	ctx    *Context
	model  *Model
	nItems int32
}

func NewSession(ctx *Context, model *Model) (*Session, error) {
	n, err := model.NItems()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(model)
	var p *C.recsys_session
	if err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_session_new(c, model.p, &p) }); err != nil {
		return nil, err
	}
	s := &Session{p, ctx, model, n}
	runtime.SetFinalizer(s, (*Session).Close)
	return s, nil
}

func (s *Session) Close() {
	if s.p != nil {
		C.recsys_session_free(s.p)
		s.p = nil
	}
}

func i32ptr(v []int32) *C.int32_t {
	if len(v) == 0 {
		return nil
	}
	return (*C.int32_t)(unsafe.Pointer(&v[0]))
}

// Score writes the score of every item into out (len n_items+1; out[0] = -Inf).
func (s *Session) Score(history []int32, out []float32) error {
	if s.p == nil || s.ctx.p == nil {
		return errClosed("Session or its Context")
	}
	defer runtime.KeepAlive(s)
	var op *C.float
	if len(out) > 0 {
		op = (*C.float)(unsafe.Pointer(&out[0]))
	}
	return call(s.ctx.p, func() C.recsys_status {
		return C.recsys_session_score(s.p, i32ptr(history), C.size_t(len(history)), op, C.size_t(len(out)))
	})
}

// NItems is the catalogue size (Score needs NItems()+1 floats).
func (s *Session) NItems() int32 { return s.nItems }

// TopK returns the k best items after history, best first, and their scores.
func (s *Session) TopK(history []int32, k int, excludeHistory bool) ([]int32, []float32, error) {
	if s.p == nil || s.ctx.p == nil {
		return nil, nil, errClosed("Session or its Context")
	}
	defer runtime.KeepAlive(s)
	if k <= 0 {
		return nil, nil, &Error{Code: EInvalid, Message: "k must be positive"}
	}
	items := make([]int32, k)
	scores := make([]float32, k)
	ex := C.int(0)
	if excludeHistory {
		ex = 1
	}
	err := call(s.ctx.p, func() C.recsys_status {
		return C.recsys_session_topk(s.p, i32ptr(history), C.size_t(len(history)), C.int(k), ex,
			(*C.int32_t)(unsafe.Pointer(&items[0])), (*C.float)(unsafe.Pointer(&scores[0])))
	})
	if err != nil {
		return nil, nil, err
	}
	return items, scores, nil
}

// --------------------------------------------------------------- Evaluation

// Evaluate returns the named metrics (HR@K, NDCG@K, MRR, users) of model on ds.
func Evaluate(ctx *Context, model *Model, ds *Dataset, opts *Options) (map[string]float64, error) {
	defer runtime.KeepAlive(model)
	defer runtime.KeepAlive(ds)
	defer runtime.KeepAlive(opts)
	var m *C.recsys_metrics
	err := ctx.do(func(c *C.recsys_ctx) C.recsys_status { return C.recsys_evaluate(c, model.p, ds.p, opts.ptr(), &m) })
	if err != nil {
		return nil, err
	}
	return takeMetrics(m), nil
}

// takeMetrics copies every metric of m into a map and frees m.
func takeMetrics(m *C.recsys_metrics) map[string]float64 {
	defer C.recsys_metrics_free(m)
	out := map[string]float64{}
	for i := C.int(0); i < C.recsys_metrics_count(m); i++ {
		out[C.GoString(C.recsys_metrics_name(m, i))] = float64(C.recsys_metrics_value(m, i))
	}
	return out
}
