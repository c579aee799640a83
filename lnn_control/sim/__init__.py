"""Simulators without ROS: the backend interface, CarRacing-v3, the speed controller, the demonstrator, perturbations
and closed-loop evaluation (``lnn-control sim-eval``).

- :mod:`~lnn_control.sim.base`: ``Simulator`` protocol, ``Observation``, ``Truth``, ``sanitize_command``;
- :mod:`~lnn_control.sim.carracing`: ``CarRacingSim`` (gymnasium CarRacing-v3, headless);
- :mod:`~lnn_control.sim.speed`: ``SpeedController`` (target velocity -> gas/brake);
- :mod:`~lnn_control.sim.track`: ``Track``, ``TrackLocator``, ``LapCounter``;
- :mod:`~lnn_control.sim.expert`: ``Expert`` and ``ExpertController`` (pure pursuit on privileged geometry);
- :mod:`~lnn_control.sim.perturb`: ``PerturbConfig`` and ``Perturber``;
- :mod:`~lnn_control.sim.closed_loop`: ``run_episode``, ``evaluate`` and the ``sim-eval`` verb;
- :mod:`~lnn_control.sim.report`: the report folder.

Importing this package imports neither gymnasium nor torch.
"""
