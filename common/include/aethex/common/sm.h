/*
 * A tiny state machine helper for the lifecycles written down as state tables
 * (RTMP session, publish authorisation, relay pull, db-client connect).
 *
 * Each machine defines an enum of states, a table of ax_sm_conf entries (name + bitmask
 * of allowed next states) and calls ax_sm_move(); an illegal transition is our own bug
 * and aborts (AX_PRE).
 */
#ifndef AETHEX_COMMON_SM_H
#define AETHEX_COMMON_SM_H

#include <stdint.h>

#define AX_SM_BIT(state) (UINT64_C(1) << (state))

struct ax_sm_conf {
    const char *name;
    uint64_t allowed; /* bitmask of AX_SM_BIT(next state) */
};

typedef struct ax_sm {
    const struct ax_sm_conf *conf; /* borrowed; must outlive the machine */
    int nstates;
    int state;
} ax_sm_t;

/* Starts `sm` in `initial`. `conf` has `nstates` entries and must outlive `sm`. */
void ax_sm_init(ax_sm_t *sm, const struct ax_sm_conf *conf, int nstates, int initial);

/* Moves to `next`; aborts if the table does not allow it from the current state. */
void ax_sm_move(ax_sm_t *sm, int next);

/* The current state and its name (for logs). */
static inline int ax_sm_state(const ax_sm_t *sm)
{
    return sm->state;
}
const char *ax_sm_state_name(const ax_sm_t *sm);

#endif /* AETHEX_COMMON_SM_H */
