"""course_lib: everything the lessons of the object-detection course reuse.

Data flows one way through the modules:
datasets -> (boxes, anchors, matching, coding) -> models / losses -> nms -> metrics -> viz.
A lower module never imports a higher one.
"""

__version__ = "0.1.0"
