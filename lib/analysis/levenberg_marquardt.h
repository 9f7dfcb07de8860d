/* Small dense least-squares helpers: a bounded Levenberg–Marquardt solver and
 * a symmetric eigen-solver, for fits with a handful of parameters. */
#ifndef RS_LM_H
#define RS_LM_H

/* Residuals r_i(theta) = model_i(theta) - y_i for i < n and, when jac is not
 * NULL, the Jacobian d r_i / d theta_j in jac[i*p + j]. */
typedef void (*rs_lm_fn)(void *arg, const double *theta, double *resid, double *jac);

typedef struct rs_lm_result {
    double ssr;      /* sum of squared residuals at the returned theta */
    int iterations;  /* accepted steps */
    int converged;   /* 1: a tolerance was met; 0: stopped at max_iter */
} rs_lm_result;

/* Minimise Σ r_i² over lo <= theta <= hi (lo/hi may be NULL: unbounded;
 * entries may be ±INFINITY). theta holds the start on entry (clamped into
 * the bounds) and the solution on return. p <= RS_LM_MAX_PARAMS.
 * Returns 0, -1 (out of memory or bad sizes), -2 (non-finite residuals at
 * the start). */
#define RS_LM_MAX_PARAMS 16
int rs_lm_solve(int n, int p, rs_lm_fn fn, void *arg, double *theta, const double *lo,
                const double *hi, int max_iter, rs_lm_result *res);

/* Eigen-decomposition of the symmetric p x p matrix a (row-major, destroyed)
 * by cyclic Jacobi rotations: eigenvalues in evals, eigenvectors in the
 * columns of evecs (p x p, row-major). p <= RS_LM_MAX_PARAMS. */
void rs_sym_eigen(int p, double *a, double *evals, double *evecs);

/* Solve the symmetric positive definite system a x = b (p x p row-major,
 * destroyed) by Cholesky. Returns 0, or -1 when a is not positive definite. */
int rs_chol_solve(int p, double *a, double *b, double *x);

#endif
