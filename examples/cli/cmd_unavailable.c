/* recommend / serve when the CLI was built without jansson or libmicrohttpd. */
#include "cli.h"
#include "commands.h"

#ifndef RECSYS_CLI_HAVE_JSON
int cmd_recommend(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "recsys recommend: unavailable: built without jansson (libjansson-dev)\n");
    return 1;
}

int cmd_import(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "recsys import: unavailable: built without jansson (libjansson-dev)\n");
    return 1;
}

int cmd_export(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "recsys export: unavailable: built without jansson (libjansson-dev)\n");
    return 1;
}
#endif

#ifndef RECSYS_CLI_HAVE_HTTP
int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "recsys serve: unavailable: built without libmicrohttpd and jansson "
                    "(libmicrohttpd-dev, libjansson-dev)\n");
    return 1;
}
#endif
