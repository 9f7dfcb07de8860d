/* The rows a bank's gate reads (docs/ADAPTERS.md, "Training"). */
#ifndef RS_ADAPTERS_GATE_INPUT_H
#define RS_ADAPTERS_GATE_INPUT_H

#include "models/batch.h"

/* Fill the gate's input rows (gseq, gtimes, gnext_times, gstart; the time
 * arrays only when bb has times) from rows 0..rows-1 of bb: at most the last
 * gw events (gw <= 0: all) up to a cut position c, placed so that c lands on
 * the last position L-1 (the gate reads the base state there).
 *
 * Scoring (train = 0): c = L-1, the whole input.
 * Training (train = 1): c splits each row's pairs in half; the targets of the
 * positions before c are cleared in bb (pos = 0: no loss there). So the gate
 * never sees an item the adapted model is scored on; without the cut it
 * summarises the whole row, later targets included, and the bank learns to
 * recall them (lower training loss, worse held-out ranking). */
void rs_gate_input(rs_batch_buf *bb, int rows, int gw, int train, int32_t *gseq,
                   int64_t *gtimes, int64_t *gnext_times, int *gstart);

#endif
