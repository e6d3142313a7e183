/* Vietnamese messages of agrictl (msgs.c): {English, Vietnamese}. */
{NULL, NULL},
