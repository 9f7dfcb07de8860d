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

#endif
