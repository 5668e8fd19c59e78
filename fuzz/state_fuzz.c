/* libFuzzer driver of core/state's blob validator: whatever bytes a client posts to /state or a
 * sandbox leaves in .kiln/state.out, state_validate() returns OK, INVALID or TOO_LARGE, never
 * crashes, never reads past the buffer and never decompresses past the cap; an accepted blob
 * has a known version byte and is accepted again (deterministic). */
#include <stdint.h>
#include <stdlib.h>

#include "core/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a small cap, so that decompression bombs hit it quickly */
    enum kiln_err rc = state_validate(data, size, 1u << 20, NULL);

    if (rc != KILN_OK && rc != KILN_ERR_INVALID && rc != KILN_ERR_TOO_LARGE)
        abort();
    if (rc == KILN_OK) {
        if (size < 2 || (data[0] != STATE_VERSION_RAW && data[0] != STATE_VERSION_LZ4))
            abort();
        if (state_validate(data, size, 1u << 20, NULL) != KILN_OK)
            abort();
    }
    return 0;
}
