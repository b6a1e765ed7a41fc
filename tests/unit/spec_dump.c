/*
 * Print include/amqp_methods.def for tests/unit/spec_check.py, which
 * compares it with the official AMQP 0-9-1 XML:
 *
 *   METHOD class_id method_id class.method synchronous content ext
 *   FIELD class_id method_id index name type
 *
 * Names are spelled as in the .def (underscores); field indexes count from
 * 0; ext is 1 for AMQP_METHOD_EXT rows (RabbitMQ extensions not in the XML).
 */
#include <stdio.h>
#include <stdlib.h>

#define F(type, name)							\
	printf("FIELD %d %d %d %s %s\n", cid_, mid_, idx_++, #name, #type);

#define DUMP_METHOD(c, m, cid, mid, sync, content, ext, FIELDS)		\
	{								\
		int cid_ = (cid), mid_ = (mid), idx_ = 0;		\
		printf("METHOD %d %d %s.%s %d %d %d\n", cid_, mid_,	\
		    #c, #m, (sync), (content), (ext));			\
		FIELDS							\
		(void)idx_;						\
	}

int main(void)
{
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS)		\
	DUMP_METHOD(c, m, cid, mid, sync, content, 0, FIELDS)
#define AMQP_METHOD_EXT(c, m, cid, mid, sync, content, FIELDS)		\
	DUMP_METHOD(c, m, cid, mid, sync, content, 1, FIELDS)
#include "amqp_methods.def"
#undef AMQP_METHOD_EXT
#undef AMQP_METHOD
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("spec_dump: stdout");
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}
