#ifndef DEMUCSD_CLAME_SHIM_H
#define DEMUCSD_CLAME_SHIM_H
#include <lame/lame.h>
#endif
