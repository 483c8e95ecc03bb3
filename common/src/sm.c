#include "aethex/common/sm.h"

#include "aethex/common/util.h"

void ax_sm_init(ax_sm_t *sm, const struct ax_sm_conf *conf, int nstates, int initial)
{
    AX_PRE(nstates > 0 && nstates <= 64);
    AX_PRE(initial >= 0 && initial < nstates);
    sm->conf = conf;
    sm->nstates = nstates;
    sm->state = initial;
}

void ax_sm_move(ax_sm_t *sm, int next)
{
    AX_PRE(next >= 0 && next < sm->nstates);
    AX_PRE(sm->conf[sm->state].allowed & AX_SM_BIT(next));
    sm->state = next;
}

const char *ax_sm_state_name(const ax_sm_t *sm)
{
    return sm->conf[sm->state].name;
}
