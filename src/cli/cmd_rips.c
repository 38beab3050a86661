#include "cli.h"
#include <stdio.h>
int ats_cmd_rips(int argc, char **argv) {
    fprintf(stderr, "attnscope rips: under construction\n");
    return ATS_EXIT_FAIL;
}
