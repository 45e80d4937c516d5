/*
 * md_test.h -- shared helpers for the Check unit tests in tests/unit/.
 *
 * Each test file is its own Check suite with its own main (MD_TEST_MAIN),
 * so a failing stage is visible by the binary's name.
 */
#ifndef MD_TEST_H
#define MD_TEST_H

#include <check.h>
#include <stdlib.h>

#define MD_TEST_MAIN(suite_fn)                                         \
    int main(void)                                                     \
    {                                                                  \
        SRunner *sr = srunner_create(suite_fn());                      \
        srunner_run_all(sr, CK_NORMAL);                                \
        int nfailed = srunner_ntests_failed(sr);                       \
        srunner_free(sr);                                              \
        return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;             \
    }

#endif
