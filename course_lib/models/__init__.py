"""Detection models built from course_lib's parts. Import the module you need, e.g.
`from course_lib.models import ssd`."""
