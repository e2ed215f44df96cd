#ifndef OSC_VERSION_H
#define OSC_VERSION_H
#define OSC_VERSION    "0.1.0"
#define OSC_USER_AGENT "osconnect/" OSC_VERSION
#endif
