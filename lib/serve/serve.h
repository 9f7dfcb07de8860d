/* Internal serving pieces (lib/serve/): request-row filling for sessions.
 * The model's self-description lives in models/model_meta.h. */
#ifndef RS_SERVE_H
#define RS_SERVE_H

#include "models/model.h"
#include "models/model_meta.h"
#include "models/batch.h"


/* Tests: 0 makes the session run the full forward (all positions, every
 * block) instead of the last-position one. */
void rs_session_set_last_only(recsys_session *s, int on);

/* The user vector of a state's window from its cached keys and values
 * (lib/serve/user_state.c), extended over the rows appended since, into
 * out (dim floats); scratch: rs_extend_scratch_floats. *done = 0 (and
 * nothing computed) when the cache does not apply: the model positions
 * from the end, or the window has dropped events, or the state was made
 * for another shape; the caller then encodes the window with a forward. */
recsys_status rs_user_state_encode(recsys_user_state *u, recsys_ctx *ctx, recsys_model *m,
                                   float *scratch, float *out, int *done);

#endif
