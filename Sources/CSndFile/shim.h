#ifndef DEMUCSD_CSNDFILE_SHIM_H
#define DEMUCSD_CSNDFILE_SHIM_H
#include <sndfile.h>
#endif
