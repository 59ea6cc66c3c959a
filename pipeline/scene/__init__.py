"""What stands where on a camera, and since when: its zones, its fixtures (allowed static things) and the
tracker that says how long each object has stood still. The rules read all three."""
