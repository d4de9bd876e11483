// Anchors the vtables of the error types in one translation unit.
#include "jointnas/core/error.h"
