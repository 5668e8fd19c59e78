/* The runner's bytes, pulled into .rodata by the assembler (as http/assets.c does for the API
 * documents); CMake lists the .py as an OBJECT_DEPENDS of this file. */
#include "lang/py_runner.h"

__asm__(".section .rodata\n"
        ".balign 16\n"
        "kiln_py_runner:\n"
        ".incbin \"" KILN_SOURCE_DIR "/src/lang/py/kiln_runner.py\"\n"
        "kiln_py_runner_end:\n"
        ".previous\n");
extern const char kiln_py_runner[] __asm__("kiln_py_runner");
extern const char kiln_py_runner_end[] __asm__("kiln_py_runner_end");

const char *py_runner_source(size_t *len)
{
    *len = (size_t)(kiln_py_runner_end - kiln_py_runner);
    return kiln_py_runner;
}
