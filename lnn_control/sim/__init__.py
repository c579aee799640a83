"""Simulators without ROS: the backend interface, CarRacing-v3, the speed controller, the demonstrator, perturbations
and closed-loop evaluation (``lnn-control sim-eval``).

- :mod:`~lnn_control.sim.base`: ``Simulator`` protocol, ``Observation``, ``Truth``, ``sanitize_command``;
- :mod:`~lnn_control.sim.carracing`: ``CarRacingSim`` (gymnasium CarRacing-v3, headless);
- :mod:`~lnn_control.sim.speed`: ``SpeedController`` (target velocity -> gas/brake);
- :mod:`~lnn_control.sim.track`: ``Track``, ``TrackLocator``, ``LapCounter``;
- :mod:`~lnn_control.sim.expert`: ``Expert`` and ``ExpertController`` (pure pursuit on privileged geometry);
- :mod:`~lnn_control.sim.perturb`: ``PerturbConfig`` and ``Perturber``;
- :mod:`~lnn_control.sim.lockstep`: ``LockstepRules`` (sim_node's lockstep and hold rules, in simulated time);
- :mod:`~lnn_control.sim.closed_loop`: ``run_episode``, ``run_episodes`` and the ``sim-eval`` verb (its report
  folder is written by :mod:`lnn_control.report.episodes`).

Importing this package imports neither gymnasium nor torch.
"""
