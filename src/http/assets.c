/* The embedded assets. The assembler's .incbin pulls each file into .rodata between two labels;
 * CMake lists the files as OBJECT_DEPENDS of this source so that editing one rebuilds it. */
#include "http/assets.h"

#include <string.h>

#define HTTP_INCBIN(sym, file)                                                                     \
    __asm__(".section .rodata\n"                                                                   \
            ".balign 16\n"                                                                         \
            "kiln_asset_" #sym ":\n"                                                               \
            ".incbin \"" KILN_SOURCE_DIR "/docs/" file "\"\n"                                      \
            "kiln_asset_" #sym "_end:\n"                                                           \
            ".previous\n");                                                                        \
    extern const char kiln_asset_##sym[] __asm__("kiln_asset_" #sym);                              \
    extern const char kiln_asset_##sym##_end[] __asm__("kiln_asset_" #sym "_end")

HTTP_INCBIN(openapi, "openapi.json");
HTTP_INCBIN(docs_html, "api-docs.html");
HTTP_INCBIN(docs_js, "api-docs.js");

static const struct {
    const char *name;
    const char *start, *end;
} http_assets[] = {
    {"openapi.json", kiln_asset_openapi, kiln_asset_openapi_end},
    {"api-docs.html", kiln_asset_docs_html, kiln_asset_docs_html_end},
    {"api-docs.js", kiln_asset_docs_js, kiln_asset_docs_js_end},
};

const char *http_asset(const char *name, size_t *len)
{
    for (size_t i = 0; i < sizeof http_assets / sizeof http_assets[0]; i++)
        if (strcmp(http_assets[i].name, name) == 0) {
            *len = (size_t)(http_assets[i].end - http_assets[i].start);
            return http_assets[i].start;
        }
    return NULL;
}
