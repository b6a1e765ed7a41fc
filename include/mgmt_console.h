/*
 * The web console's static files on the management port (mgmt_console.c).
 */
#ifndef WARREN_MGMT_CONSOLE_H
#define WARREN_MGMT_CONSOLE_H

#include <stdbool.h>

struct evhttp_request;
struct warren_config;

/* Whether path is one of the console's files ("/", "/console.js", ...). */
bool mgmt_console_path(const char *path);
void mgmt_console_serve(struct evhttp_request *r,
    const struct warren_config *cfg, const char *path);

#endif
