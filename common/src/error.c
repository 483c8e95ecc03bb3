#include "aethex/common/error.h"

const char *ax_strerror(int err)
{
    switch (err) {
#define AX__ERR_MSG(name, value, msg)                                                       \
    case (value):                                                                           \
        return msg;
        AX_ERRNO_MAP(AX__ERR_MSG)
#undef AX__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *ax_err_name(int err)
{
    switch (err) {
#define AX__ERR_NAME(name, value, msg)                                                      \
    case (value):                                                                           \
        return #name;
        AX_ERRNO_MAP(AX__ERR_NAME)
#undef AX__ERR_NAME
    default:
        return "EUNKNOWNCODE";
    }
}
