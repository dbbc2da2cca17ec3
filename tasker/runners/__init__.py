"""Process runners behind one interface: start a command, return its result.

``base`` defines the interface (``RunResult``, ``Cancel``, ``Clock``);
``process`` runs real processes in their own process groups and streams their
output (spilling large output to disk); ``dryrun`` starts nothing;
``exectypes`` turns (host, command, arguments, exec type) into an argv.
"""
