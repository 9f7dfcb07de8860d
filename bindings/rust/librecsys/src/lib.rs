//! Safe Rust interface to librecsys (sequential recommendation: SASRec, HSTU).
//!
//! ```no_run
//! use librecsys::{Context, Options, Dataset, Model, Trainer, Session};
//! let ctx = Context::with(2, 42)?;
//! let opts = Options::with(&ctx, &[("data.synthetic_users", "300"), ("model.dim", "16")])?;
//! let ds = Dataset::synthetic(&ctx, &opts)?;
//! let mut model = Model::new(&ctx, &opts, &ds)?;
//! {
//!     let mut trainer = Trainer::new(&ctx, &mut model, &ds, &opts)?;
//!     trainer.run_epoch()?;
//! }
//! let metrics = librecsys::evaluate(&ctx, &model, &ds, &opts)?;
//! let (items, scores) = Session::new(&ctx, &model)?.topk(ds.user_items(0)?, 10, true)?;
//! # Ok::<(), librecsys::Error>(())
//! ```
//!
//! Ownership maps onto lifetimes: `Options`, `Trainer`, `Session`, `ApEn` and
//! `PerfLaw` borrow their `Context` (the C objects keep a pointer to it); a
//! `Trainer` borrows its `Dataset` and borrows the `Model` mutably (training
//! writes the weights), a `Session` borrows the `Model` shared. `Dataset`,
//! `Model` and `Metrics` keep no ctx. Threads: `Context` is `Send` but not
//! `Sync` (one thread at a time), so the objects borrowing it are neither;
//! `Dataset` and `Model` are `Send + Sync` (immutable or read-only while
//! shared, reference count atomic): score from several threads with one
//! `Context` and `Session` per thread over a shared `&Model`. Callbacks are
//! closures; a panic inside one never unwinds into C: it stops the call and
//! is resumed when the call returns.
//!
//! The borrows are checked at compile time: a model cannot be trained while
//! a session scores it,
//! ```compile_fail
//! # use librecsys::*;
//! # fn f(ctx: &Context, opts: &Options, ds: &Dataset, mut model: Model) -> Result<()> {
//! let s = Session::new(ctx, &model)?;
//! let t = Trainer::new(ctx, &mut model, ds, opts)?;
//! drop(s);
//! # Ok(()) }
//! ```
//! a session (which uses its ctx) cannot move to another thread,
//! ```compile_fail
//! # use librecsys::*;
//! fn needs_send<T: Send>(_: T) {}
//! # fn f(ctx: &Context, model: &Model) -> Result<()> {
//! needs_send(Session::new(ctx, model)?);
//! # Ok(()) }
//! ```
//! and a context cannot be dropped while its options live.
//! ```compile_fail
//! # use librecsys::*;
//! # fn f() -> Result<()> {
//! let ctx = Context::new()?;
//! let opts = Options::new(&ctx)?;
//! drop(ctx);
//! opts.set("model.dim", "8")?;
//! # Ok(()) }
//! ```
//! A model's tensors cannot be overwritten while a session borrows it,
//! ```compile_fail
//! # use librecsys::*;
//! # fn f(ctx: &Context, mut model: Model, v: &[f32]) -> Result<()> {
//! let s = Session::new(ctx, &model)?;
//! model.set_tensor(ctx, "item_emb", v)?;
//! drop(s);
//! # Ok(()) }
//! ```
//! an adapter (its errors go to its ctx) cannot outlive its context,
//! ```compile_fail
//! # use librecsys::*;
//! # fn f(model: &Model) -> Result<()> {
//! let ctx = Context::new()?;
//! let a = Adapter::new(&ctx, model, None, AdapterKind::User)?;
//! drop(ctx);
//! a.info()?;
//! # Ok(()) }
//! ```
//! nor move to another thread, while it may outlive its `Model` (it holds a
//! C reference):
//! ```compile_fail
//! # use librecsys::*;
//! fn needs_send<T: Send>(_: T) {}
//! # fn f(ctx: &Context, model: &Model) -> Result<()> {
//! needs_send(Adapter::new(ctx, model, None, AdapterKind::User)?);
//! # Ok(()) }
//! ```
//! ```no_run
//! # use librecsys::*;
//! # fn f(ctx: &Context, opts: &Options) -> Result<()> {
//! let model = Model::new_blank(ctx, opts, 100)?;
//! let a = Adapter::new(ctx, &model, Some(opts), AdapterKind::User)?;
//! drop(model);
//! let folded = a.fold()?;
//! # Ok(()) }
//! ```
use librecsys_sys as sys;
use std::any::Any;
use std::ffi::{CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};

pub use sys::recsys_model_info as ModelInfo;
pub use sys::recsys_progress as Progress;

/// A failed librecsys call: status code and the C message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: i32,
    message: String,
}

impl Error {
    fn new(code: i32, message: String) -> Error {
        Error { code, message }
    }
    /// The recsys_status, e.g. `sys::RECSYS_E_NOT_FOUND`.
    pub fn code(&self) -> i32 {
        self.code
    }
    /// The status name, e.g. "RECSYS_E_NOT_FOUND".
    pub fn name(&self) -> &'static str {
        unsafe { static_str(sys::recsys_status_str(self.code)) }
    }
    /// The message the library recorded for the failing call.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.name())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

unsafe fn static_str(p: *const c_char) -> &'static str {
    if p.is_null() {
        ""
    } else {
        CStr::from_ptr(p).to_str().unwrap_or("")
    }
}

unsafe fn owned_str(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The failing call's message: the thread's last error, else the ctx's (copied).
fn message(ctx: *const sys::recsys_ctx) -> String {
    let mut m = unsafe { owned_str(sys::recsys_last_errmsg()) };
    if m.is_empty() && !ctx.is_null() {
        let n = unsafe { sys::recsys_errmsg_copy(ctx, ptr::null_mut(), 0) };
        let mut buf = vec![0u8; n + 1];
        unsafe { sys::recsys_errmsg_copy(ctx, buf.as_mut_ptr() as *mut c_char, n + 1) };
        buf.truncate(n);
        m = String::from_utf8_lossy(&buf).into_owned();
    }
    m
}

fn check(st: sys::recsys_status, ctx: *const sys::recsys_ctx) -> Result<()> {
    if st == sys::RECSYS_OK {
        Ok(())
    } else {
        Err(Error::new(st, message(ctx)))
    }
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(sys::RECSYS_E_INVALID, format!("string {:?} contains NUL", s)))
}

fn nonnull<T>(p: *mut T) -> Result<NonNull<T>> {
    NonNull::new(p).ok_or_else(|| Error::new(sys::RECSYS_E_INTERNAL, "library returned NULL".to_string()))
}

/// Check that the loaded library serves the header these bindings were made from.
pub fn check_version() -> Result<()> {
    check(unsafe { sys::recsys_check_version(sys::RECSYS_VERSION_NUMBER) }, ptr::null())
}

/// Version of the loaded library as MAJOR*10000 + MINOR*100 + PATCH.
pub fn version_number() -> i32 {
    unsafe { sys::recsys_version_number() }
}

/// Status and message of this thread's last failing call (`RECSYS_OK`, "" when none).
pub fn last_error() -> (i32, String) {
    unsafe { (sys::recsys_last_error(), owned_str(sys::recsys_last_errmsg())) }
}

/// Version string of the loaded library.
pub fn version() -> &'static str {
    unsafe { static_str(sys::recsys_version_string()) }
}

// ------------------------------------------------------------------ Context

type LogFn = Box<dyn FnMut(i32, &str) + Send>;

/// Worker pool, seed, kernel table and error state. One thread at a time.
pub struct Context {
    raw: NonNull<sys::recsys_ctx>,
    log: Option<Box<LogFn>>,
}

// A ctx may move between threads (used by one at a time) but is not Sync.
unsafe impl Send for Context {}

impl Context {
    pub fn new() -> Result<Context> {
        let mut p = ptr::null_mut();
        check(unsafe { sys::recsys_ctx_new(&mut p) }, ptr::null())?;
        Ok(Context { raw: nonnull(p)?, log: None })
    }
    /// A context with `threads` workers (0 = online CPUs) and `seed`.
    pub fn with(threads: i32, seed: u64) -> Result<Context> {
        let c = Context::new()?;
        c.set_threads(threads)?;
        c.set_seed(seed)?;
        Ok(c)
    }
    /// A context whose pool never has more than `n_threads` threads (the caller counts as one).
    pub fn with_max_threads(n_threads: i32) -> Result<Context> {
        let mut p = ptr::null_mut();
        check(unsafe { sys::recsys_ctx_new_with_threads(n_threads, &mut p) }, ptr::null())?;
        Ok(Context { raw: nonnull(p)?, log: None })
    }
    /// A context on a pool shared with other contexts (`set_threads` then fails with
    /// `RECSYS_E_STATE`). The context keeps the pool alive.
    pub fn shared(pool: &ThreadPool) -> Result<Context> {
        let mut p = ptr::null_mut();
        check(unsafe { sys::recsys_ctx_new_shared(pool.raw.as_ptr(), &mut p) }, ptr::null())?;
        Ok(Context { raw: nonnull(p)?, log: None })
    }
    pub fn as_ptr(&self) -> *mut sys::recsys_ctx {
        self.raw.as_ptr()
    }
    fn check(&self, st: sys::recsys_status) -> Result<()> {
        check(st, self.as_ptr())
    }
    /// File, line and column of the last error when it was in an input file.
    pub fn error_location(&self) -> Option<(String, i32, i32)> {
        let mut f: *const c_char = ptr::null();
        let (mut line, mut col) = (0, 0);
        let st = unsafe { sys::recsys_ctx_error_location(self.as_ptr(), &mut f, &mut line, &mut col) };
        if st == sys::RECSYS_OK {
            Some((unsafe { owned_str(f) }, line, col))
        } else {
            None
        }
    }
    pub fn set_threads(&self, n: i32) -> Result<()> {
        self.check(unsafe { sys::recsys_ctx_set_threads(self.as_ptr(), n) })
    }
    pub fn threads(&self) -> i32 {
        unsafe { sys::recsys_ctx_threads(self.as_ptr()) }
    }
    pub fn set_seed(&self, seed: u64) -> Result<()> {
        self.check(unsafe { sys::recsys_ctx_set_seed(self.as_ptr(), seed) })
    }
    pub fn set_max_isa(&self, isa: &str) -> Result<()> {
        let s = cstring(isa)?;
        self.check(unsafe { sys::recsys_ctx_set_max_isa(self.as_ptr(), s.as_ptr()) })
    }
    pub fn isa(&self) -> String {
        unsafe { owned_str(sys::recsys_ctx_isa(self.as_ptr())) }
    }
    pub fn kernel_name(&self, kernel: i32) -> Option<String> {
        let p = unsafe { sys::recsys_ctx_kernel_name(self.as_ptr(), kernel) };
        if p.is_null() {
            None
        } else {
            Some(unsafe { owned_str(p) })
        }
    }
    pub fn set_gemm_backend(&self, backend: &str) -> Result<()> {
        let s = cstring(backend)?;
        self.check(unsafe { sys::recsys_ctx_set_gemm_backend(self.as_ptr(), s.as_ptr()) })
    }
    pub fn set_bf16(&self, on: bool) -> Result<()> {
        self.check(unsafe { sys::recsys_ctx_set_bf16(self.as_ptr(), on as c_int) })
    }
    /// Message of the last error on this ctx ("" when none).
    pub fn errmsg(&self) -> String {
        unsafe { owned_str(sys::recsys_ctx_errmsg(self.as_ptr())) }
    }
    /// Route log lines to `f(level, message)` (run on the calling thread); None drops them.
    pub fn set_log<F: FnMut(i32, &str) + Send + 'static>(&mut self, f: Option<F>) -> Result<()> {
        unsafe extern "C" fn tramp(user: *mut c_void, level: c_int, msg: *const c_char) {
            let f = &mut *(user as *mut LogFn);
            let m = owned_str(msg);
            let _ = panic::catch_unwind(AssertUnwindSafe(|| f(level, &m)));
        }
        match f {
            None => {
                self.check(unsafe { sys::recsys_ctx_set_log(self.as_ptr(), None, ptr::null_mut()) })?;
                self.log = None;
            }
            Some(f) => {
                let mut b: Box<LogFn> = Box::new(Box::new(f));
                let user = &mut *b as *mut LogFn as *mut c_void;
                self.check(unsafe { sys::recsys_ctx_set_log(self.as_ptr(), Some(tramp), user) })?;
                self.log = Some(b);
            }
        }
        Ok(())
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        unsafe { sys::recsys_ctx_free(self.raw.as_ptr()) }
    }
}

// --------------------------------------------------------------- ThreadPool

/// A worker pool shared by several contexts (`Context::shared`). Reference-counted
/// in C: contexts keep it alive, so it may be dropped before them.
pub struct ThreadPool {
    raw: NonNull<sys::recsys_threadpool>,
}

// The pool is made for sharing between contexts used on different threads.
unsafe impl Send for ThreadPool {}
unsafe impl Sync for ThreadPool {}

impl ThreadPool {
    pub fn new(n_threads: i32) -> Result<ThreadPool> {
        let mut p = ptr::null_mut();
        check(unsafe { sys::recsys_threadpool_new(n_threads, &mut p) }, ptr::null())?;
        Ok(ThreadPool { raw: nonnull(p)? })
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        unsafe { sys::recsys_threadpool_free(self.raw.as_ptr()) }
    }
}

// ------------------------------------------------------------------ Options

/// One option key as `recsys_opts_describe` gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionInfo {
    pub key: String,
    /// `sys::RECSYS_OPT_STRING`, `_INT`, `_FLOAT`, `_ENUM`, `_BOOL`, `_INT_LIST`.
    pub kind: i32,
    /// "string", "int", "float", "enum", "bool", "int list".
    pub type_name: String,
    pub default: String,
    /// enum: the allowed words.
    pub choices: Vec<String>,
    /// int, float and int list: inclusive bounds (else 0).
    pub min: f64,
    pub max: f64,
    /// A phrase on the allowed values where type and bounds do not say it all.
    pub allowed: Option<String>,
    pub doc: String,
}

/// Every option key with its type, default, bounds or choices and doc. Needs no ctx.
pub fn describe_options() -> Result<Vec<OptionInfo>> {
    let n = unsafe { sys::recsys_opts_count(ptr::null()) };
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for i in 0..n {
        let mut c: sys::recsys_opt_info = unsafe { std::mem::zeroed() };
        c.struct_size = std::mem::size_of::<sys::recsys_opt_info>() as c_int;
        check(unsafe { sys::recsys_opts_describe(i, &mut c) }, ptr::null())?;
        let choices = unsafe { owned_str(c.choices) };
        out.push(OptionInfo {
            key: unsafe { owned_str(c.key) },
            kind: c.r#type,
            type_name: unsafe { owned_str(c.type_name) },
            default: unsafe { owned_str(c.default_value) },
            choices: if c.choices.is_null() { Vec::new() } else { choices.split('|').map(String::from).collect() },
            min: c.min,
            max: c.max,
            allowed: if c.allowed.is_null() { None } else { Some(unsafe { owned_str(c.allowed) }) },
            doc: unsafe { owned_str(c.doc) },
        });
    }
    Ok(out)
}

/// `section.key` settings; keeps a pointer to its ctx, hence the borrow.
pub struct Options<'c> {
    raw: NonNull<sys::recsys_opts>,
    ctx: &'c Context,
}

impl<'c> Options<'c> {
    pub fn new(ctx: &'c Context) -> Result<Options<'c>> {
        let mut p = ptr::null_mut();
        ctx.check(unsafe { sys::recsys_opts_new(ctx.as_ptr(), &mut p) })?;
        Ok(Options { raw: nonnull(p)?, ctx })
    }
    pub fn with(ctx: &'c Context, kv: &[(&str, &str)]) -> Result<Options<'c>> {
        let o = Options::new(ctx)?;
        for (k, v) in kv {
            o.set(k, v)?;
        }
        Ok(o)
    }
    pub fn as_ptr(&self) -> *mut sys::recsys_opts {
        self.raw.as_ptr()
    }
    pub fn set(&self, key: &str, value: &str) -> Result<()> {
        let (k, v) = (cstring(key)?, cstring(value)?);
        self.ctx.check(unsafe { sys::recsys_opts_set(self.as_ptr(), k.as_ptr(), v.as_ptr()) })
    }
    pub fn set_int(&self, key: &str, value: i64) -> Result<()> {
        let k = cstring(key)?;
        self.ctx.check(unsafe { sys::recsys_opts_set_int(self.as_ptr(), k.as_ptr(), value) })
    }
    pub fn set_float(&self, key: &str, value: f64) -> Result<()> {
        let k = cstring(key)?;
        self.ctx.check(unsafe { sys::recsys_opts_set_float(self.as_ptr(), k.as_ptr(), value) })
    }
    pub fn get(&self, key: &str) -> Result<String> {
        let k = cstring(key)?;
        let mut v: *const c_char = ptr::null();
        self.ctx.check(unsafe { sys::recsys_opts_get(self.as_ptr(), k.as_ptr(), &mut v) })?;
        Ok(unsafe { owned_str(v) })
    }
    pub fn get_int(&self, key: &str) -> Result<i64> {
        let k = cstring(key)?;
        let mut v = 0i64;
        self.ctx.check(unsafe { sys::recsys_opts_get_int(self.as_ptr(), k.as_ptr(), &mut v) })?;
        Ok(v)
    }
    pub fn get_float(&self, key: &str) -> Result<f64> {
        let k = cstring(key)?;
        let mut v = 0f64;
        self.ctx.check(unsafe { sys::recsys_opts_get_float(self.as_ptr(), k.as_ptr(), &mut v) })?;
        Ok(v)
    }
    /// Every key described: see `describe_options`.
    pub fn describe(&self) -> Result<Vec<OptionInfo>> {
        describe_options()
    }
    /// Load a YAML config file (errors carry file:line:column).
    pub fn load_yaml(&self, path: &str) -> Result<()> {
        let p = cstring(path)?;
        self.ctx.check(unsafe { sys::recsys_opts_load_yaml(self.as_ptr(), p.as_ptr()) })
    }
    /// Every known key.
    pub fn keys(&self) -> Vec<String> {
        let n = unsafe { sys::recsys_opts_count(self.as_ptr()) };
        (0..n).map(|i| unsafe { owned_str(sys::recsys_opts_key(self.as_ptr(), i)) }).collect()
    }
    pub fn load_yaml_str(&self, yaml: &str, name: &str) -> Result<()> {
        let n = cstring(name)?;
        self.ctx.check(unsafe {
            sys::recsys_opts_load_yaml_string(self.as_ptr(), yaml.as_ptr() as *const c_char, yaml.len(), n.as_ptr())
        })
    }
}

impl Drop for Options<'_> {
    fn drop(&mut self) {
        unsafe { sys::recsys_opts_free(self.raw.as_ptr()) }
    }
}

// ------------------------------------------------------------------ Dataset

/// Per-user item sequences. Immutable; keeps no ctx.
pub struct Dataset {
    raw: NonNull<sys::recsys_dataset>,
}

// Immutable after creation: readable from several threads (recsys.h).
unsafe impl Send for Dataset {}
unsafe impl Sync for Dataset {}

impl Dataset {
    fn make(ctx: &Context, st: sys::recsys_status, p: *mut sys::recsys_dataset) -> Result<Dataset> {
        ctx.check(st)?;
        Ok(Dataset { raw: nonnull(p)? })
    }
    pub fn synthetic(ctx: &Context, opts: &Options) -> Result<Dataset> {
        let mut p = ptr::null_mut();
        let st = unsafe { sys::recsys_dataset_synthetic(ctx.as_ptr(), opts.as_ptr(), &mut p) };
        Dataset::make(ctx, st, p)
    }
    /// An interaction file: `user item [timestamp] [rating]` lines (`.gz` too).
    pub fn load(ctx: &Context, path: &str, opts: Option<&Options>) -> Result<Dataset> {
        let s = cstring(path)?;
        let mut p = ptr::null_mut();
        let o = opts.map_or(ptr::null(), |o| o.as_ptr() as *const _);
        let st = unsafe { sys::recsys_dataset_load(ctx.as_ptr(), s.as_ptr(), o, &mut p) };
        Dataset::make(ctx, st, p)
    }
    /// A sequence file (`user i1 i2 ...` lines) with an optional timestamp file.
    pub fn load_sequences(ctx: &Context, path: &str, times_path: Option<&str>, opts: Option<&Options>) -> Result<Dataset> {
        let s = cstring(path)?;
        let t = match times_path {
            Some(t) => Some(cstring(t)?),
            None => None,
        };
        let mut p = ptr::null_mut();
        let o = opts.map_or(ptr::null(), |o| o.as_ptr() as *const _);
        let tp = t.as_ref().map_or(ptr::null(), |t| t.as_ptr());
        let st = unsafe { sys::recsys_dataset_load_sequences(ctx.as_ptr(), s.as_ptr(), tp, o, &mut p) };
        Dataset::make(ctx, st, p)
    }
    /// Open by path as the CLI does ("synthetic" for the embedded data).
    pub fn open(ctx: &Context, path: &str, opts: &Options) -> Result<Dataset> {
        let s = cstring(path)?;
        let mut p = ptr::null_mut();
        let st = unsafe { sys::recsys_dataset_open(ctx.as_ptr(), s.as_ptr(), opts.as_ptr(), &mut p) };
        Dataset::make(ctx, st, p)
    }
    pub fn from_arrays(ctx: &Context, users: &[i64], items: &[i64], times: Option<&[i64]>, opts: &Options) -> Result<Dataset> {
        if users.len() != items.len() || times.map_or(false, |t| t.len() != users.len()) {
            return Err(Error::new(sys::RECSYS_E_INVALID, "users, items and times must have one length".into()));
        }
        let mut p = ptr::null_mut();
        let t = times.map_or(ptr::null(), |t| t.as_ptr());
        let st = unsafe {
            sys::recsys_dataset_from_arrays(ctx.as_ptr(), users.len(), users.as_ptr(), items.as_ptr(), t, opts.as_ptr(), &mut p)
        };
        Dataset::make(ctx, st, p)
    }
    pub fn as_ptr(&self) -> *const sys::recsys_dataset {
        self.raw.as_ptr()
    }
    pub fn stat(&self, which: i32) -> Result<f64> {
        let mut v = 0.0;
        check(unsafe { sys::recsys_dataset_stat(self.as_ptr(), which, &mut v) }, ptr::null())?;
        Ok(v)
    }
    pub fn n_users(&self) -> i64 {
        self.stat(sys::RECSYS_STAT_USERS).unwrap_or(0.0) as i64
    }
    pub fn n_items(&self) -> i32 {
        self.stat(sys::RECSYS_STAT_ITEMS).unwrap_or(0.0) as i32
    }
    /// The user's dense item ids, borrowed from the dataset (no copy).
    pub fn user_items(&self, user: i64) -> Result<&[i32]> {
        let mut items: *const i32 = ptr::null();
        let mut n = 0usize;
        check(
            unsafe { sys::recsys_dataset_user_items(self.as_ptr(), user, &mut items, ptr::null_mut(), &mut n) },
            ptr::null(),
        )?;
        Ok(if n == 0 { &[] } else { unsafe { std::slice::from_raw_parts(items, n) } })
    }
    pub fn item_name(&self, item: i32) -> Result<&str> {
        let mut v: *const c_char = ptr::null();
        check(unsafe { sys::recsys_dataset_item_name(self.as_ptr(), item, &mut v) }, ptr::null())?;
        Ok(unsafe { CStr::from_ptr(v) }.to_str().unwrap_or(""))
    }
    /// The user's timestamps, borrowed (None when the data has none).
    pub fn user_times(&self, user: i64) -> Result<Option<&[i64]>> {
        let mut items: *const i32 = ptr::null();
        let mut times: *const i64 = ptr::null();
        let mut n = 0usize;
        check(unsafe { sys::recsys_dataset_user_items(self.as_ptr(), user, &mut items, &mut times, &mut n) }, ptr::null())?;
        Ok(if times.is_null() {
            None
        } else if n == 0 {
            Some(&[][..])
        } else {
            Some(unsafe { std::slice::from_raw_parts(times, n) })
        })
    }
    pub fn user_name(&self, user: i64) -> Result<&str> {
        let mut v: *const c_char = ptr::null();
        check(unsafe { sys::recsys_dataset_user_name(self.as_ptr(), user, &mut v) }, ptr::null())?;
        Ok(unsafe { CStr::from_ptr(v) }.to_str().unwrap_or(""))
    }
    pub fn user_id(&self, name: &str) -> Result<i64> {
        let s = cstring(name)?;
        let mut v = 0i64;
        check(unsafe { sys::recsys_dataset_user_id(self.as_ptr(), s.as_ptr(), &mut v) }, ptr::null())?;
        Ok(v)
    }
    pub fn item_id(&self, name: &str) -> Result<i32> {
        let s = cstring(name)?;
        let mut v = 0i32;
        check(unsafe { sys::recsys_dataset_item_id(self.as_ptr(), s.as_ptr(), &mut v) }, ptr::null())?;
        Ok(v)
    }
}

impl Drop for Dataset {
    fn drop(&mut self) {
        unsafe { sys::recsys_dataset_free(self.raw.as_ptr()) }
    }
}

// -------------------------------------------------------------------- Model

/// A SASRec / HSTU model; keeps no ctx. Read-only through `&Model`.
pub struct Model {
    raw: NonNull<sys::recsys_model>,
}

// Read-only calls may run from several threads; the C reference count is atomic.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Model {
    pub fn new(ctx: &Context, opts: &Options, ds: &Dataset) -> Result<Model> {
        let mut p = ptr::null_mut();
        ctx.check(unsafe { sys::recsys_model_new(ctx.as_ptr(), opts.as_ptr(), ds.as_ptr(), &mut p) })?;
        Ok(Model { raw: nonnull(p)? })
    }
    pub fn load(ctx: &Context, path: &str) -> Result<Model> {
        let s = cstring(path)?;
        let mut p = ptr::null_mut();
        ctx.check(unsafe { sys::recsys_model_load(ctx.as_ptr(), s.as_ptr(), &mut p) })?;
        Ok(Model { raw: nonnull(p)? })
    }
    pub fn save(&self, ctx: &Context, path: &str) -> Result<()> {
        let s = cstring(path)?;
        ctx.check(unsafe { sys::recsys_model_save(ctx.as_ptr(), self.as_ptr(), s.as_ptr()) })
    }
    pub fn as_ptr(&self) -> *mut sys::recsys_model {
        self.raw.as_ptr()
    }
    pub fn n_params(&self) -> Result<i64> {
        let mut n = 0i64;
        check(unsafe { sys::recsys_model_n_params(self.as_ptr(), &mut n) }, ptr::null())?;
        Ok(n)
    }
    pub fn n_items(&self) -> Result<i32> {
        let mut n = 0i32;
        check(unsafe { sys::recsys_model_n_items(self.as_ptr(), &mut n) }, ptr::null())?;
        Ok(n)
    }
    pub fn get(&self, key: &str) -> Result<String> {
        let k = cstring(key)?;
        let mut v: *const c_char = ptr::null();
        check(unsafe { sys::recsys_model_get(self.as_ptr(), k.as_ptr(), &mut v) }, ptr::null())?;
        Ok(unsafe { owned_str(v) })
    }
}

/// A borrowed rows x dim row-major matrix of the model (valid while it is borrowed).
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'m> {
    pub data: &'m [f32],
    pub rows: usize,
    pub dim: usize,
}

impl<'m> Matrix<'m> {
    pub fn row(&self, i: usize) -> &'m [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

impl Model {
    /// Type, sizes and flags (`recsys_model_info_get`).
    pub fn info(&self) -> Result<ModelInfo> {
        let mut i: sys::recsys_model_info = unsafe { std::mem::zeroed() };
        i.struct_size = std::mem::size_of::<sys::recsys_model_info>();
        check(unsafe { sys::recsys_model_info_get(self.as_ptr(), &mut i) }, ptr::null())?;
        Ok(i)
    }
    /// Dense id of an external item id, without the dataset.
    pub fn item_id(&self, external_id: &str) -> Result<i32> {
        let s = cstring(external_id)?;
        let mut v = 0i32;
        check(unsafe { sys::recsys_model_item_id(self.as_ptr(), s.as_ptr(), &mut v) }, ptr::null())?;
        Ok(v)
    }
    /// External id of a dense item id (borrowed from the model).
    pub fn item_name(&self, item: i32) -> Result<&str> {
        let mut v: *const c_char = ptr::null();
        check(unsafe { sys::recsys_model_item_name(self.as_ptr(), item, &mut v) }, ptr::null())?;
        Ok(unsafe { CStr::from_ptr(v) }.to_str().unwrap_or(""))
    }
    fn matrix(&self, st: sys::recsys_status, p: *const f32, rows: i32, dim: c_int) -> Result<Matrix<'_>> {
        check(st, ptr::null())?;
        let (rows, dim) = (rows.max(0) as usize, dim.max(0) as usize);
        let data = if rows * dim == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(p, rows * dim) } };
        Ok(Matrix { data, rows, dim })
    }
    /// The item embedding table (n_items+1 rows, row 0 padding), without a copy.
    /// The borrow of the model keeps it valid (no `Trainer` can take `&mut Model` meanwhile).
    pub fn item_table(&self) -> Result<Matrix<'_>> {
        let (mut p, mut rows, mut dim) = (ptr::null(), 0i32, 0 as c_int);
        let st = unsafe { sys::recsys_model_item_table(self.as_ptr(), &mut p, &mut rows, &mut dim) };
        self.matrix(st, p, rows, dim)
    }
    /// The vectors scores are dot products with (normalised for l2norm models).
    pub fn item_vectors(&self) -> Result<Matrix<'_>> {
        let (mut p, mut rows, mut dim) = (ptr::null(), 0i32, 0 as c_int);
        let st = unsafe { sys::recsys_model_item_vectors(self.as_ptr(), &mut p, &mut rows, &mut dim) };
        self.matrix(st, p, rows, dim)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        unsafe { sys::recsys_model_free(self.raw.as_ptr()) }
    }
}

// ------------------------------------------------------------------ Trainer

struct ProgressCb<'a> {
    f: Box<dyn FnMut(&Progress) -> bool + 'a>,
    panic: Option<Box<dyn Any + Send>>,
}

/// Trains a model: borrows the ctx, the model (mutably) and the dataset.
pub struct Trainer<'a> {
    raw: NonNull<sys::recsys_trainer>,
    ctx: &'a Context,
    _borrows: PhantomData<(&'a mut Model, &'a Dataset)>,
    progress: Option<Box<ProgressCb<'a>>>,
}

impl<'a> Trainer<'a> {
    pub fn new(ctx: &'a Context, model: &'a mut Model, ds: &'a Dataset, opts: &Options) -> Result<Trainer<'a>> {
        let mut p = ptr::null_mut();
        ctx.check(unsafe { sys::recsys_trainer_new(ctx.as_ptr(), model.as_ptr(), ds.as_ptr(), opts.as_ptr(), &mut p) })?;
        Ok(Trainer { raw: nonnull(p)?, ctx, _borrows: PhantomData, progress: None })
    }
    /// `f(progress)` between batches on this thread; returning true stops
    /// training (run_epoch gives RECSYS_E_ABORTED); a panic stops it and is resumed.
    pub fn set_progress<F: FnMut(&Progress) -> bool + 'a>(&mut self, f: Option<F>) -> Result<()> {
        unsafe extern "C" fn tramp(user: *mut c_void, p: *const sys::recsys_progress) -> c_int {
            let cb = &mut *(user as *mut ProgressCb);
            let f = &mut cb.f;
            match panic::catch_unwind(AssertUnwindSafe(|| f(&*p))) {
                Ok(stop) => stop as c_int,
                Err(payload) => {
                    cb.panic = Some(payload);
                    1
                }
            }
        }
        match f {
            None => {
                self.ctx.check(unsafe { sys::recsys_trainer_set_progress(self.raw.as_ptr(), None, ptr::null_mut()) })?;
                self.progress = None;
            }
            Some(f) => {
                let mut cb = Box::new(ProgressCb { f: Box::new(f), panic: None });
                let user = &mut *cb as *mut ProgressCb as *mut c_void;
                self.ctx.check(unsafe { sys::recsys_trainer_set_progress(self.raw.as_ptr(), Some(tramp), user) })?;
                self.progress = Some(cb);
            }
        }
        Ok(())
    }
    /// One epoch; returns its mean loss.
    pub fn run_epoch(&mut self) -> Result<f64> {
        let mut loss = 0.0;
        let st = unsafe { sys::recsys_trainer_run_epoch(self.raw.as_ptr(), &mut loss) };
        if let Some(cb) = self.progress.as_mut() {
            if let Some(payload) = cb.panic.take() {
                panic::resume_unwind(payload);
            }
        }
        self.ctx.check(st)?;
        Ok(loss)
    }
    pub fn epoch(&self) -> i32 {
        unsafe { sys::recsys_trainer_epoch(self.raw.as_ptr()) }
    }
    /// Whether trainer.eval_every says to evaluate after the epochs run so far.
    pub fn eval_due(&self) -> bool {
        unsafe { sys::recsys_trainer_eval_due(self.raw.as_ptr()) != 0 }
    }
    /// Save model, optimiser state, epoch and RNG, atomically.
    pub fn save_checkpoint(&mut self, path: &str) -> Result<()> {
        let p = cstring(path)?;
        self.ctx.check(unsafe { sys::recsys_trainer_save_checkpoint(self.raw.as_ptr(), p.as_ptr()) })
    }
    /// Continue from a training checkpoint.
    pub fn resume(&mut self, path: &str) -> Result<()> {
        let p = cstring(path)?;
        self.ctx.check(unsafe { sys::recsys_trainer_resume(self.raw.as_ptr(), p.as_ptr()) })
    }
}

impl Drop for Trainer<'_> {
    fn drop(&mut self) {
        unsafe { sys::recsys_trainer_free(self.raw.as_ptr()) }
    }
}

// ------------------------------------------------------------------ Session

/// One scoring request (`recsys_request`): slices borrowed for the call.
#[derive(Clone, Copy, Debug)]
pub struct Request<'r> {
    /// Dense item ids, oldest first.
    pub history: &'r [i32],
    /// One timestamp per history item, or None.
    pub times: Option<&'r [i64]>,
    pub k: usize,
    pub exclude_history: bool,
    /// More items never to recommend.
    pub exclude: &'r [i32],
    /// n_items+1 bytes, non-zero = excluded.
    pub exclude_mask: Option<&'r [u8]>,
    /// Rank only these items (None: the whole catalogue).
    pub candidates: Option<&'r [i32]>,
    /// An adapter of the session's model (None: the base model).
    pub adapter: Option<&'r Adapter<'r>>,
}

impl<'r> Request<'r> {
    /// A request for the top `k` after `history` (exclude_history off, as in C).
    pub fn new(history: &'r [i32], k: usize) -> Request<'r> {
        Request { history, times: None, k, exclude_history: false, exclude: &[], exclude_mask: None, candidates: None, adapter: None }
    }
    pub fn times(mut self, t: &'r [i64]) -> Self {
        self.times = Some(t);
        self
    }
    pub fn exclude_history(mut self, on: bool) -> Self {
        self.exclude_history = on;
        self
    }
    pub fn exclude(mut self, items: &'r [i32]) -> Self {
        self.exclude = items;
        self
    }
    pub fn exclude_mask(mut self, mask: &'r [u8]) -> Self {
        self.exclude_mask = Some(mask);
        self
    }
    pub fn candidates(mut self, items: &'r [i32]) -> Self {
        self.candidates = Some(items);
        self
    }
    pub fn adapter(mut self, a: &'r Adapter<'r>) -> Self {
        self.adapter = Some(a);
        self
    }
    fn to_c(&self, n_items: i32) -> Result<sys::recsys_request> {
        if self.times.map_or(false, |t| t.len() != self.history.len()) {
            return Err(Error::new(sys::RECSYS_E_INVALID, "times must have one entry per history item".into()));
        }
        if self.exclude_mask.map_or(false, |m| m.len() != n_items as usize + 1) {
            return Err(Error::new(sys::RECSYS_E_INVALID, "exclude_mask must have n_items+1 entries".into()));
        }
        if self.k > c_int::MAX as usize {
            return Err(Error::new(sys::RECSYS_E_INVALID, "k too large".into()));
        }
        let mut r: sys::recsys_request = unsafe { std::mem::zeroed() };
        r.struct_size = std::mem::size_of::<sys::recsys_request>();
        r.history = self.history.as_ptr();
        r.n_history = self.history.len();
        r.times = self.times.map_or(ptr::null(), |t| t.as_ptr());
        r.k = self.k as c_int;
        r.exclude_history = self.exclude_history as c_int;
        r.exclude = if self.exclude.is_empty() { ptr::null() } else { self.exclude.as_ptr() };
        r.n_exclude = self.exclude.len();
        r.exclude_mask = self.exclude_mask.map_or(ptr::null(), |m| m.as_ptr());
        r.candidates = self.candidates.map_or(ptr::null(), |c| c.as_ptr());
        r.n_candidates = self.candidates.map_or(0, |c| c.len());
        r.adapter = self.adapter.map_or(ptr::null(), |a| a.raw.as_ptr() as *const _);
        Ok(r)
    }
}

/// Results of `Session::topk_batch`: row i holds `counts[i]` items at `i * stride`.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub stride: usize,
    pub items: Vec<i32>,
    pub scores: Vec<f32>,
    pub counts: Vec<usize>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.counts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
    pub fn items(&self, i: usize) -> &[i32] {
        &self.items[i * self.stride..i * self.stride + self.counts[i]]
    }
    pub fn scores(&self, i: usize) -> &[f32] {
        &self.scores[i * self.stride..i * self.stride + self.counts[i]]
    }
}

/// Scoring scratch for one thread: borrows its ctx and the model.
pub struct Session<'a> {
    raw: NonNull<sys::recsys_session>,
    ctx: &'a Context,
    n_items: i32,
    dim: usize,
    _model: PhantomData<&'a Model>,
}

impl<'a> Session<'a> {
    pub fn new(ctx: &'a Context, model: &'a Model) -> Result<Session<'a>> {
        let info = model.info()?;
        let mut p = ptr::null_mut();
        ctx.check(unsafe { sys::recsys_session_new(ctx.as_ptr(), model.as_ptr(), &mut p) })?;
        Ok(Session { raw: nonnull(p)?, ctx, n_items: info.n_items, dim: info.dim.max(0) as usize, _model: PhantomData })
    }
    pub fn n_items(&self) -> i32 {
        self.n_items
    }
    /// Scores of every item into `out` (n_items + 1; out[0] = -inf).
    pub fn score_into(&mut self, history: &[i32], out: &mut [f32]) -> Result<()> {
        self.ctx.check(unsafe {
            sys::recsys_session_score(self.raw.as_ptr(), history.as_ptr(), history.len(), out.as_mut_ptr(), out.len())
        })
    }
    pub fn score(&mut self, history: &[i32]) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.n_items as usize + 1];
        self.score_into(history, &mut out)?;
        Ok(out)
    }
    /// Top-k into `items` / `scores` (k = items.len()).
    pub fn topk_into(&mut self, history: &[i32], items: &mut [i32], scores: &mut [f32], exclude_history: bool) -> Result<()> {
        if scores.len() < items.len() {
            return Err(Error::new(sys::RECSYS_E_INVALID, "scores shorter than items".into()));
        }
        self.ctx.check(unsafe {
            sys::recsys_session_topk(
                self.raw.as_ptr(),
                history.as_ptr(),
                history.len(),
                items.len() as c_int,
                exclude_history as c_int,
                items.as_mut_ptr(),
                scores.as_mut_ptr(),
            )
        })
    }
    pub fn topk(&mut self, history: &[i32], k: usize, exclude_history: bool) -> Result<(Vec<i32>, Vec<f32>)> {
        let mut items = vec![0i32; k];
        let mut scores = vec![0f32; k];
        self.topk_into(history, &mut items, &mut scores, exclude_history)?;
        Ok((items, scores))
    }

    /// Scores of a request into `out`: n_items+1 floats, or one per candidate.
    pub fn score_request_into(&mut self, req: &Request, out: &mut [f32]) -> Result<()> {
        let r = req.to_c(self.n_items)?;
        self.ctx.check(unsafe { sys::recsys_session_score_request(self.raw.as_ptr(), &r, out.as_mut_ptr(), out.len()) })
    }
    pub fn score_request(&mut self, req: &Request) -> Result<Vec<f32>> {
        let n = req.candidates.map_or(self.n_items as usize + 1, |c| c.len());
        let mut out = vec![0f32; n];
        self.score_request_into(req, &mut out)?;
        Ok(out)
    }
    /// Top-k of a request, best first (ties: lower id); fewer than k only when
    /// fewer items are eligible.
    pub fn topk_request(&mut self, req: &Request) -> Result<(Vec<i32>, Vec<f32>)> {
        let r = req.to_c(self.n_items)?;
        let mut items = vec![0i32; req.k];
        let mut scores = vec![0f32; req.k];
        let mut n = 0usize;
        self.ctx.check(unsafe {
            sys::recsys_session_topk_request(self.raw.as_ptr(), &r, items.as_mut_ptr(), scores.as_mut_ptr(), &mut n)
        })?;
        items.truncate(n);
        scores.truncate(n);
        Ok((items, scores))
    }
    /// `req` as a request on a user state's window: no history of its own.
    fn state_c(&self, req: &Request) -> Result<sys::recsys_request> {
        if !req.history.is_empty() || req.times.is_some() {
            return Err(Error::new(sys::RECSYS_E_INVALID, "the user state supplies history and times".into()));
        }
        let mut r = req.to_c(self.n_items)?;
        r.history = ptr::null();
        r.n_history = 0;
        r.times = ptr::null();
        Ok(r)
    }
    /// Top-k after a user state's window (`recsys_session_topk_state`): `req`
    /// gives k, exclusions and candidates, and an empty history. For a model
    /// trained with `model.positions = start` only the events appended since
    /// the last call are encoded (keys and values cached in the state).
    pub fn topk_state(&mut self, state: &mut UserState, req: &Request) -> Result<(Vec<i32>, Vec<f32>)> {
        let r = self.state_c(req)?;
        let mut items = vec![0i32; req.k];
        let mut scores = vec![0f32; req.k];
        let mut n = 0usize;
        self.ctx.check(unsafe {
            sys::recsys_session_topk_state(self.raw.as_ptr(), state.as_ptr(), &r, items.as_mut_ptr(), scores.as_mut_ptr(), &mut n)
        })?;
        items.truncate(n);
        scores.truncate(n);
        Ok((items, scores))
    }
    /// Scores after a user state's window (`recsys_session_score_state`), as `score_request`.
    pub fn score_state(&mut self, state: &mut UserState, req: &Request) -> Result<Vec<f32>> {
        let r = self.state_c(req)?;
        let mut out = vec![0f32; req.candidates.map_or(self.n_items as usize + 1, |c| c.len())];
        self.ctx.check(unsafe {
            sys::recsys_session_score_state(self.raw.as_ptr(), state.as_ptr(), &r, out.as_mut_ptr(), out.len())
        })?;
        Ok(out)
    }
    /// Top-k of many requests in one call (histories encoded in batches, one
    /// matrix product per batch); identical to `topk_request` for each. The
    /// row width is the largest k; unused slots hold item 0 and -inf.
    pub fn topk_batch(&mut self, reqs: &[Request]) -> Result<Batch> {
        let cs = reqs.iter().map(|q| q.to_c(self.n_items)).collect::<Result<Vec<_>>>()?;
        let ptrs: Vec<*const sys::recsys_request> = cs.iter().map(|c| c as *const _).collect();
        let stride = reqs.iter().map(|q| q.k).max().unwrap_or(0);
        let mut b = Batch {
            stride,
            items: vec![0; reqs.len() * stride],
            scores: vec![f32::NEG_INFINITY; reqs.len() * stride],
            counts: vec![0; reqs.len()],
        };
        if !reqs.is_empty() {
            self.ctx.check(unsafe {
                sys::recsys_session_topk_batch(
                    self.raw.as_ptr(),
                    ptrs.as_ptr(),
                    ptrs.len(),
                    stride,
                    b.items.as_mut_ptr(),
                    b.scores.as_mut_ptr(),
                    b.counts.as_mut_ptr(),
                )
            })?;
        }
        Ok(b)
    }
    /// The user vector (dim floats): score(i) = user_vector . model.item_vectors().row(i).
    pub fn user_vector(&mut self, req: &Request) -> Result<Vec<f32>> {
        let r = req.to_c(self.n_items)?;
        let mut v = vec![0f32; self.dim];
        self.ctx.check(unsafe { sys::recsys_session_user_vector(self.raw.as_ptr(), &r, v.as_mut_ptr(), v.len()) })?;
        Ok(v)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        unsafe { sys::recsys_session_free(self.raw.as_ptr()) }
    }
}

// ------------------------------------------------------------------ Metrics

/// Named metric values (HR@K, NDCG@K, MRR, users); keeps no ctx.
pub struct Metrics {
    raw: NonNull<sys::recsys_metrics>,
}

unsafe impl Send for Metrics {}
unsafe impl Sync for Metrics {}

impl Metrics {
    pub fn get(&self, name: &str) -> Result<f64> {
        let s = cstring(name)?;
        let mut v = 0.0;
        check(unsafe { sys::recsys_metrics_get(self.raw.as_ptr(), s.as_ptr(), &mut v) }, ptr::null())?;
        Ok(v)
    }
    pub fn to_vec(&self) -> Vec<(String, f64)> {
        let p = self.raw.as_ptr();
        let n = unsafe { sys::recsys_metrics_count(p) };
        (0..n)
            .map(|i| unsafe { (owned_str(sys::recsys_metrics_name(p, i)), sys::recsys_metrics_value(p, i)) })
            .collect()
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        unsafe { sys::recsys_metrics_free(self.raw.as_ptr()) }
    }
}

pub fn evaluate(ctx: &Context, model: &Model, ds: &Dataset, opts: &Options) -> Result<Metrics> {
    let mut p = ptr::null_mut();
    ctx.check(unsafe { sys::recsys_evaluate(ctx.as_ptr(), model.as_ptr(), ds.as_ptr(), opts.as_ptr(), &mut p) })?;
    Ok(Metrics { raw: nonnull(p)? })
}

pub fn evaluate_popularity(ctx: &Context, ds: &Dataset, opts: &Options) -> Result<Metrics> {
    let mut p = ptr::null_mut();
    ctx.check(unsafe { sys::recsys_evaluate_popularity(ctx.as_ptr(), ds.as_ptr(), opts.as_ptr(), &mut p) })?;
    Ok(Metrics { raw: nonnull(p)? })
}

// ----------------------------------------------------------------- Analysis

/// Approximate Entropy estimator; borrows its ctx.
pub struct ApEn<'c> {
    raw: NonNull<sys::recsys_apen>,
    ctx: &'c Context,
}

impl<'c> ApEn<'c> {
    pub fn new(ctx: &'c Context, opts: &Options) -> Result<ApEn<'c>> {
        let mut p = ptr::null_mut();
        ctx.check(unsafe { sys::recsys_apen_new(ctx.as_ptr(), opts.as_ptr(), &mut p) })?;
        Ok(ApEn { raw: nonnull(p)?, ctx })
    }
    pub fn sequence(&mut self, seq: &[i32]) -> Result<f64> {
        let mut v = 0.0;
        self.ctx.check(unsafe { sys::recsys_apen_sequence(self.raw.as_ptr(), seq.as_ptr(), seq.len(), &mut v) })?;
        Ok(v)
    }
    /// ApEn of a numeric sequence (tolerance apen.r).
    pub fn numeric(&mut self, seq: &[f64]) -> Result<f64> {
        let mut v = 0.0;
        self.ctx.check(unsafe { sys::recsys_apen_numeric(self.raw.as_ptr(), seq.as_ptr(), seq.len(), &mut v) })?;
        Ok(v)
    }
    /// Dataset ApEn: (mean over users, per-user values (NaN: too short), users averaged).
    pub fn dataset(&mut self, ds: &Dataset) -> Result<(f64, Vec<f64>, i64)> {
        let mut per_user = vec![0f64; ds.n_users().max(0) as usize];
        let (mut v, mut used) = (0.0, 0i64);
        self.ctx.check(unsafe {
            sys::recsys_apen_dataset(self.raw.as_ptr(), ds.as_ptr(), &mut v, per_user.as_mut_ptr(), per_user.len(), &mut used)
        })?;
        Ok((v, per_user, used))
    }
}

impl Drop for ApEn<'_> {
    fn drop(&mut self) {
        unsafe { sys::recsys_apen_free(self.raw.as_ptr()) }
    }
}

/// Performance Law fitter; borrows its ctx.
pub struct PerfLaw<'c> {
    raw: NonNull<sys::recsys_perflaw>,
    ctx: &'c Context,
}

impl<'c> PerfLaw<'c> {
    pub fn new(ctx: &'c Context) -> Result<PerfLaw<'c>> {
        let mut p = ptr::null_mut();
        ctx.check(unsafe { sys::recsys_perflaw_new(ctx.as_ptr(), &mut p) })?;
        Ok(PerfLaw { raw: nonnull(p)?, ctx })
    }
    pub fn add(&mut self, layers: f64, hidden: f64, data: f64, metric: f64) -> Result<()> {
        self.ctx.check(unsafe { sys::recsys_perflaw_add(self.raw.as_ptr(), layers, hidden, data, metric) })
    }
    pub fn fit(&mut self) -> Result<()> {
        self.ctx.check(unsafe { sys::recsys_perflaw_fit(self.raw.as_ptr()) })
    }
    /// (parameters w1..w5 b, their standard errors, R²).
    pub fn params(&self) -> Result<([f64; 6], [f64; 6], f64)> {
        let (mut p, mut e, mut r2) = ([0f64; 6], [0f64; 6], 0.0);
        self.ctx.check(unsafe { sys::recsys_perflaw_params(self.raw.as_ptr(), p.as_mut_ptr(), e.as_mut_ptr(), &mut r2) })?;
        Ok((p, e, r2))
    }
    pub fn predict(&self, layers: f64, hidden: f64, data: f64) -> Result<f64> {
        let mut v = 0.0;
        self.ctx.check(unsafe { sys::recsys_perflaw_predict(self.raw.as_ptr(), layers, hidden, data, &mut v) })?;
        Ok(v)
    }
    /// The (layers, hidden, predicted metric) among the candidates that maximises the prediction.
    pub fn best_size(&self, data: f64, layers: &[f64], hidden: &[f64]) -> Result<(f64, f64, f64)> {
        let (mut l, mut h, mut m) = (0.0, 0.0, 0.0);
        self.ctx.check(unsafe {
            sys::recsys_perflaw_best_size(
                self.raw.as_ptr(),
                data,
                layers.as_ptr(),
                layers.len(),
                hidden.as_ptr(),
                hidden.len(),
                &mut l,
                &mut h,
                &mut m,
            )
        })?;
        Ok((l, h, m))
    }
}

impl Drop for PerfLaw<'_> {
    fn drop(&mut self) {
        unsafe { sys::recsys_perflaw_free(self.raw.as_ptr()) }
    }
}

pub use sys::{
    RECSYS_MODEL_HSTU, RECSYS_MODEL_SASREC, RECSYS_OPT_BOOL, RECSYS_OPT_ENUM, RECSYS_OPT_FLOAT, RECSYS_OPT_INT,
    RECSYS_OPT_INT_LIST, RECSYS_OPT_STRING, RECSYS_PERFLAW_N_PARAMS, RECSYS_E_ABORTED, RECSYS_E_NUMERIC, RECSYS_E_FORMAT, RECSYS_E_INVALID, RECSYS_E_IO, RECSYS_E_NOT_FOUND, RECSYS_E_PARSE,
    RECSYS_E_STATE, RECSYS_E_UNSUPPORTED, RECSYS_OK,
};

// ------------------------------------------------------------------ Tensors by name

/// Name, shape and size of a model tensor (`recsys_model_tensor_info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: &'static str,
    pub shape: Vec<i64>,
    pub numel: usize,
}

impl Model {
    /// A model with the config of `opts` for `n_items` items (ids "1".."n_items"), no dataset.
    pub fn new_blank(ctx: &Context, opts: &Options, n_items: i32) -> Result<Model> {
        let mut p = ptr::null_mut();
        ctx.check(unsafe { sys::recsys_model_new_blank(ctx.as_ptr(), opts.as_ptr(), n_items, &mut p) })?;
        Ok(Model { raw: nonnull(p)? })
    }
    pub fn tensor_count(&self) -> Result<usize> {
        let mut n: c_int = 0;
        check(unsafe { sys::recsys_model_tensor_count(self.as_ptr(), &mut n) }, ptr::null())?;
        Ok(n.max(0) as usize)
    }
    pub fn tensor_info(&self, i: usize) -> Result<TensorInfo> {
        let mut name: *const c_char = ptr::null();
        let mut ndim: c_int = 0;
        let mut shape = [0i64; sys::RECSYS_TENSOR_MAX_DIMS as usize];
        let mut numel = 0i64;
        check(
            unsafe {
                sys::recsys_model_tensor_info(self.as_ptr(), i as c_int, &mut name, &mut ndim, shape.as_mut_ptr(), &mut numel)
            },
            ptr::null(),
        )?;
        Ok(TensorInfo {
            name: unsafe { static_str(name) },
            shape: shape[..ndim.max(0) as usize].to_vec(),
            numel: numel.max(0) as usize,
        })
    }
    /// Every tensor's info, in order.
    pub fn tensors(&self) -> Result<Vec<TensorInfo>> {
        (0..self.tensor_count()?).map(|i| self.tensor_info(i)).collect()
    }
    /// Copy tensor `name` into `out` (`out.len()` must be its numel).
    pub fn get_tensor_into(&self, ctx: &Context, name: &str, out: &mut [f32]) -> Result<()> {
        let n = cstring(name)?;
        ctx.check(unsafe { sys::recsys_model_get_tensor(ctx.as_ptr(), self.as_ptr(), n.as_ptr(), out.as_mut_ptr(), out.len()) })
    }
    /// A copy of tensor `name`.
    pub fn get_tensor(&self, ctx: &Context, name: &str) -> Result<Vec<f32>> {
        let numel = self.tensors()?.into_iter().find(|t| t.name == name).map(|t| t.numel);
        let mut v = vec![0f32; numel.unwrap_or(0)];
        self.get_tensor_into(ctx, name, &mut v)?; // an unknown name fails here with the C message
        Ok(v)
    }
    /// Overwrite tensor `name`. `&mut self`: no `Session` may borrow the model; C also
    /// refuses (RECSYS_E_INVALID) while an `Adapter` or store holds a reference.
    pub fn set_tensor(&mut self, ctx: &Context, name: &str, data: &[f32]) -> Result<()> {
        let n = cstring(name)?;
        ctx.check(unsafe { sys::recsys_model_set_tensor(ctx.as_ptr(), self.as_ptr(), n.as_ptr(), data.as_ptr(), data.len()) })
    }
    /// External ids of items 1..n_items (`ids[0]` is item 1).
    pub fn set_item_ids<S: AsRef<str>>(&mut self, ctx: &Context, ids: &[S]) -> Result<()> {
        let owned = ids.iter().map(|s| cstring(s.as_ref())).collect::<Result<Vec<_>>>()?;
        let ptrs: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
        ctx.check(unsafe { sys::recsys_model_set_item_ids(ctx.as_ptr(), self.as_ptr(), ptrs.as_ptr(), ptrs.len() as i32) })
    }
}

// ------------------------------------------------------------------ UserState

/// A user's recent events for incremental serving (`recsys_user_state`).
/// It copies what it needs from the model at creation, and takes its own
/// reference to a model whose keys and values it caches, so it owns itself.
/// Not thread-safe per state: `Send`, not `Sync`.
pub struct UserState {
    raw: NonNull<sys::recsys_user_state>,
}

unsafe impl Send for UserState {}

impl UserState {
    pub fn new(model: &Model) -> Result<UserState> {
        let mut p = ptr::null_mut();
        check(unsafe { sys::recsys_user_state_new(model.as_ptr(), &mut p) }, ptr::null())?;
        Ok(UserState { raw: nonnull(p)? })
    }
    pub fn as_ptr(&self) -> *mut sys::recsys_user_state {
        self.raw.as_ptr()
    }
    /// Append one event (item 1..n_items; times non-decreasing, 0 when unused).
    pub fn append(&mut self, item: i32, time: i64) -> Result<()> {
        check(unsafe { sys::recsys_user_state_append(self.as_ptr(), item, time) }, ptr::null())
    }
    pub fn clear(&mut self) -> Result<()> {
        check(unsafe { sys::recsys_user_state_clear(self.as_ptr()) }, ptr::null())
    }
    pub fn bytes(&self) -> Result<usize> {
        let mut b = 0usize;
        check(unsafe { sys::recsys_user_state_bytes(self.as_ptr(), &mut b) }, ptr::null())?;
        Ok(b)
    }
    /// A request for the top `k` on the window, borrowed from the state (no
    /// append can happen while it lives).
    pub fn request(&self, k: usize) -> Result<Request<'_>> {
        let mut r: sys::recsys_request = unsafe { std::mem::zeroed() };
        r.struct_size = std::mem::size_of::<sys::recsys_request>();
        check(unsafe { sys::recsys_user_state_request(self.as_ptr(), &mut r) }, ptr::null())?;
        let n = r.n_history;
        let history: &[i32] = if n == 0 || r.history.is_null() { &[] } else { unsafe { std::slice::from_raw_parts(r.history, n) } };
        let mut q = Request::new(history, k);
        if n > 0 && !r.times.is_null() {
            q = q.times(unsafe { std::slice::from_raw_parts(r.times, n) });
        }
        Ok(q)
    }
}

impl Drop for UserState {
    fn drop(&mut self) {
        unsafe { sys::recsys_user_state_free(self.raw.as_ptr()) }
    }
}

// ------------------------------------------------------------------ Adapters

/// Adapter kinds (`RECSYS_ADAPTER_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterKind {
    User,
    Shared,
    Bank,
}

impl AdapterKind {
    fn raw(self) -> c_int {
        (match self {
            AdapterKind::User => sys::RECSYS_ADAPTER_USER,
            AdapterKind::Shared => sys::RECSYS_ADAPTER_SHARED,
            AdapterKind::Bank => sys::RECSYS_ADAPTER_BANK,
        }) as c_int
    }
    fn from_raw(k: c_int) -> AdapterKind {
        match k as i64 {
            x if x == sys::RECSYS_ADAPTER_SHARED as i64 => AdapterKind::Shared,
            x if x == sys::RECSYS_ADAPTER_BANK as i64 => AdapterKind::Bank,
            _ => AdapterKind::User,
        }
    }
}

/// Kind, rank and parameter count of an adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdapterInfo {
    pub kind: AdapterKind,
    pub rank: i32,
    pub n_params: usize,
}

/// A LoRA adapter (`recsys_adapter`). The C adapter holds a reference on its
/// model, so it does not borrow the `Model` (which may be dropped first); it
/// borrows the `Context` its errors go to. Not `Send`/`Sync`, as the context.
pub struct Adapter<'c> {
    raw: NonNull<sys::recsys_adapter>,
    ctx: &'c Context,
}

impl std::fmt::Debug for Adapter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Adapter({:p})", self.raw.as_ptr())
    }
}

fn opts_ptr(o: Option<&Options>) -> *const sys::recsys_opts {
    o.map_or(ptr::null(), |o| o.as_ptr() as *const _)
}

impl<'c> Adapter<'c> {
    pub fn new(ctx: &'c Context, model: &Model, opts: Option<&Options>, kind: AdapterKind) -> Result<Adapter<'c>> {
        let mut p = ptr::null_mut();
        ctx.check(unsafe { sys::recsys_adapter_new(ctx.as_ptr(), model.as_ptr(), opts_ptr(opts), kind.raw(), &mut p) })?;
        Ok(Adapter { raw: nonnull(p)?, ctx })
    }
    /// From the bytes of `to_buffer` (RECSYS_E_FORMAT damaged, RECSYS_E_INVALID another model's).
    pub fn from_buffer(ctx: &'c Context, model: &Model, buf: &[u8]) -> Result<Adapter<'c>> {
        let mut p = ptr::null_mut();
        ctx.check(unsafe {
            sys::recsys_adapter_from_buffer(ctx.as_ptr(), model.as_ptr(), buf.as_ptr() as *const c_void, buf.len(), &mut p)
        })?;
        Ok(Adapter { raw: nonnull(p)?, ctx })
    }
    /// Merge USER/SHARED adapters of one shape into a new USER adapter (`adapter.merge`).
    pub fn merge(ctx: &'c Context, adapters: &[&Adapter<'_>], weights: &[f32], opts: Option<&Options>) -> Result<Adapter<'c>> {
        if adapters.len() != weights.len() {
            return Err(Error::new(sys::RECSYS_E_INVALID, "one weight per adapter".into()));
        }
        let ptrs: Vec<*const sys::recsys_adapter> = adapters.iter().map(|a| a.as_ptr() as *const _).collect();
        let mut p = ptr::null_mut();
        ctx.check(unsafe {
            sys::recsys_adapter_merge(ctx.as_ptr(), ptrs.as_ptr(), weights.as_ptr(), ptrs.len(), opts_ptr(opts), &mut p)
        })?;
        Ok(Adapter { raw: nonnull(p)?, ctx })
    }
    pub fn as_ptr(&self) -> *mut sys::recsys_adapter {
        self.raw.as_ptr()
    }
    fn check(&self, st: sys::recsys_status) -> Result<()> {
        self.ctx.check(st)
    }
    pub fn info(&self) -> Result<AdapterInfo> {
        let (mut kind, mut rank, mut n): (c_int, c_int, i64) = (0, 0, 0);
        self.check(unsafe { sys::recsys_adapter_info(self.as_ptr(), &mut kind, &mut rank, &mut n) })?;
        Ok(AdapterInfo { kind: AdapterKind::from_raw(kind), rank, n_params: n.max(0) as usize })
    }
    pub fn get_params_into(&self, out: &mut [f32]) -> Result<()> {
        self.check(unsafe { sys::recsys_adapter_get_params(self.as_ptr(), out.as_mut_ptr(), out.len()) })
    }
    pub fn params(&self) -> Result<Vec<f32>> {
        let mut v = vec![0f32; self.info()?.n_params];
        self.get_params_into(&mut v)?;
        Ok(v)
    }
    /// Overwrite the parameters (exclusive use: `&mut self`).
    pub fn set_params(&mut self, p: &[f32]) -> Result<()> {
        self.check(unsafe { sys::recsys_adapter_set_params(self.as_ptr(), p.as_ptr(), p.len()) })
    }
    /// The serialised adapter (CRC-32C checked).
    pub fn to_buffer(&self) -> Result<Vec<u8>> {
        let (mut b, mut n): (*mut c_void, usize) = (ptr::null_mut(), 0);
        self.check(unsafe { sys::recsys_adapter_to_buffer(self.as_ptr(), &mut b, &mut n) })?;
        let v = if b.is_null() { Vec::new() } else { unsafe { std::slice::from_raw_parts(b as *const u8, n) }.to_vec() };
        unsafe { sys::recsys_free(b) };
        Ok(v)
    }
    /// Train on `ds` with the model frozen: `user` = -1 for SHARED / BANK
    /// adapters (every user), a user id for a USER adapter. The mean loss.
    pub fn train(&mut self, ds: &Dataset, user: i64, opts: Option<&Options>) -> Result<f64> {
        let mut loss = 0f64;
        self.check(unsafe { sys::recsys_adapter_train(self.as_ptr(), ds.as_ptr(), user, opts_ptr(opts), &mut loss) })?;
        Ok(loss)
    }
    /// Train a USER adapter further on one explicit history of dense item
    /// ids (`times`: None or one per item); nothing held out. The mean loss.
    pub fn train_sequence(&mut self, items: &[i32], times: Option<&[i64]>, opts: Option<&Options>) -> Result<f64> {
        if let Some(t) = times {
            if t.len() != items.len() {
                return Err(Error::new(sys::RECSYS_E_INVALID, "times must have one entry per history item".into()));
            }
        }
        let tp = times.map_or(ptr::null(), |t| t.as_ptr());
        let mut loss = 0f64;
        self.check(unsafe { sys::recsys_adapter_train_sequence(self.as_ptr(), items.as_ptr(), tp, items.len(), opts_ptr(opts), &mut loss) })?;
        Ok(loss)
    }
    /// A new model: this adapter's model with the adapter folded in (not for banks).
    pub fn fold(&self) -> Result<Model> {
        let mut m = ptr::null_mut();
        self.check(unsafe { sys::recsys_adapter_fold(self.as_ptr(), &mut m) })?;
        Ok(Model { raw: nonnull(m)? })
    }
}

impl Drop for Adapter<'_> {
    fn drop(&mut self) {
        unsafe { sys::recsys_adapter_free(self.raw.as_ptr()) }
    }
}

/// Counters of an adapter store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub n_users: i64,
    pub cached: i64,
    pub cache_bytes: i64,
    pub hits: i64,
    pub misses: i64,
}

/// A file of per-user USER adapters (`recsys_adapter_store`). Holds a C
/// reference on its model (no borrow); borrows the `Context` its errors go
/// to, so it is not `Send`/`Sync` even though C allows get/put/pin from
/// several threads (give each thread a store opened with its own context).
pub struct AdapterStore<'c> {
    raw: NonNull<sys::recsys_adapter_store>,
    ctx: &'c Context,
}

impl<'c> AdapterStore<'c> {
    /// Create an empty store for users 0..n_users-1, shaped by `opts`.
    pub fn create(ctx: &Context, model: &Model, opts: &Options, path: &str, n_users: i64) -> Result<()> {
        let s = cstring(path)?;
        ctx.check(unsafe { sys::recsys_adapter_store_create(ctx.as_ptr(), model.as_ptr(), opts.as_ptr(), s.as_ptr(), n_users) })
    }
    pub fn open(ctx: &'c Context, model: &Model, path: &str, writable: bool, opts: Option<&Options>) -> Result<AdapterStore<'c>> {
        let s = cstring(path)?;
        let mut p = ptr::null_mut();
        ctx.check(unsafe {
            sys::recsys_adapter_store_open(ctx.as_ptr(), model.as_ptr(), s.as_ptr(), writable as c_int, opts_ptr(opts), &mut p)
        })?;
        Ok(AdapterStore { raw: nonnull(p)?, ctx })
    }
    /// A read-only store from a memory image of a store file (copied).
    pub fn open_buffer(ctx: &'c Context, model: &Model, buf: &[u8], opts: Option<&Options>) -> Result<AdapterStore<'c>> {
        let mut p = ptr::null_mut();
        ctx.check(unsafe {
            sys::recsys_adapter_store_open_buffer(
                ctx.as_ptr(),
                model.as_ptr(),
                buf.as_ptr() as *const c_void,
                buf.len(),
                opts_ptr(opts),
                &mut p,
            )
        })?;
        Ok(AdapterStore { raw: nonnull(p)?, ctx })
    }
    pub fn as_ptr(&self) -> *mut sys::recsys_adapter_store {
        self.raw.as_ptr()
    }
    /// `user`'s adapter (RECSYS_E_NOT_FOUND when none).
    pub fn get(&self, user: i64) -> Result<Adapter<'c>> {
        let mut p = ptr::null_mut();
        self.ctx.check(unsafe { sys::recsys_adapter_store_get(self.as_ptr(), user, &mut p) })?;
        Ok(Adapter { raw: nonnull(p)?, ctx: self.ctx })
    }
    pub fn put(&self, user: i64, a: &Adapter<'_>, sync: bool) -> Result<()> {
        self.ctx.check(unsafe { sys::recsys_adapter_store_put(self.as_ptr(), user, a.as_ptr(), sync as c_int) })
    }
    pub fn pin(&self, user: i64, pin: bool) -> Result<()> {
        self.ctx.check(unsafe { sys::recsys_adapter_store_pin(self.as_ptr(), user, pin as c_int) })
    }
    pub fn stats(&self) -> Result<StoreStats> {
        let mut s = StoreStats::default();
        self.ctx.check(unsafe {
            sys::recsys_adapter_store_stats(self.as_ptr(), &mut s.n_users, &mut s.cached, &mut s.cache_bytes, &mut s.hits, &mut s.misses)
        })?;
        Ok(s)
    }
}

impl Drop for AdapterStore<'_> {
    fn drop(&mut self) {
        unsafe { sys::recsys_adapter_store_close(self.raw.as_ptr()) }
    }
}

/// `evaluate` with adapters: a user's adapter in `store` when it holds one,
/// else `adapter`, else the base model. `user_rank`: None, or one f64 per
/// dataset user receiving the 0-based target rank (NaN: not evaluated).
pub fn evaluate_adapters(
    ctx: &Context,
    model: &Model,
    adapter: Option<&Adapter<'_>>,
    store: Option<&AdapterStore<'_>>,
    ds: &Dataset,
    opts: &Options,
    user_rank: Option<&mut [f64]>,
) -> Result<Metrics> {
    let ranks = match user_rank {
        Some(r) => {
            if r.len() as i64 != ds.n_users() {
                return Err(Error::new(sys::RECSYS_E_INVALID, "user_rank must have one entry per dataset user".into()));
            }
            r.as_mut_ptr()
        }
        None => ptr::null_mut(),
    };
    let mut p = ptr::null_mut();
    ctx.check(unsafe {
        sys::recsys_evaluate_adapters(
            ctx.as_ptr(),
            model.as_ptr(),
            adapter.map_or(ptr::null(), |a| a.as_ptr() as *const _),
            store.map_or(ptr::null_mut(), |s| s.as_ptr()),
            ds.as_ptr(),
            opts.as_ptr(),
            ranks,
            &mut p,
        )
    })?;
    Ok(Metrics { raw: nonnull(p)? })
}
